//! Request-body parsing that reports every offending field at once, instead of serde's first.
//!
//! A resource's `parse_*` function walks a `serde_json::Value` with [`Input`], collecting
//! [`FieldError`]s, and returns the typed value only when there are none.

use serde::Serialize;
use serde_json::{Map, Value};

/// One offending input field.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `billing_address.country` or `lines[1].quantity`.
    #[schema(example = "billing_address.country")]
    pub field: String,
    pub message: String,
}

/// Errors collected while parsing one body.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

/// Errors reported for one body at most; past that one more entry says the rest were left out
/// (a body of 5 000 bad fields gets an answer of 21 entries, not 5 000).
pub const MAX_ERRORS: usize = 20;

impl Errors {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        push_bounded(&mut self.0, FieldError { field: field.into(), message: message.into() });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was wrong.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() { Ok(value()) } else { Err(self.0) }
    }
}

/// Longest field path and message an error shows (a path through deep nesting is cut).
const MAX_SHOWN: usize = 256;

/// Adds `error` unless `MAX_ERRORS` are listed already; the first one over says so. Its field
/// and message are shown bounded, control characters escaped, whatever built them.
pub fn push_bounded(errors: &mut Vec<FieldError>, error: FieldError) {
    match errors.len() {
        n if n < MAX_ERRORS => {
            errors.push(FieldError { field: shown(&error.field), message: shown(&error.message) })
        }
        n if n == MAX_ERRORS => errors.push(FieldError {
            field: String::new(),
            message: "more errors were found and are not listed".into(),
        }),
        _ => {}
    }
}

/// `text` in at most `MAX_SHOWN` characters, control characters escaped; as it is when it fits.
fn shown(text: &str) -> String {
    if text.len() <= MAX_SHOWN && !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut shown = 0;
    for c in text.chars() {
        let escaped = c.is_control().then(|| c.escape_default());
        shown += escaped.clone().map_or(1, Iterator::count);
        if shown > MAX_SHOWN {
            out.push('…');
            break;
        }
        match escaped {
            Some(e) => out.extend(e),
            None => out.push(c),
        }
    }
    out
}

/// A name the client chose, as an error message may show it: at most 64 characters, control
/// characters escaped, so nobody's string is echoed at length.
pub fn shown_name(name: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = name.chars().take(MAX).flat_map(char::escape_default).collect();
    if name.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// Reports every string value (and object key) under `value` that contains a NUL character.
fn refuse_nul(value: &Value, path: &str, errors: &mut Errors) {
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match value {
        Value::String(s) if s.contains('\0') => errors.push(path, "must not contain NUL characters"),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                refuse_nul(item, &format!("{path}[{i}]"), errors);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                // Each part of a path is shown bounded, so deep nesting builds no long string.
                if key.contains('\0') {
                    errors.push(join(&shown_name(key)), "a field name must not contain NUL characters");
                } else {
                    refuse_nul(item, &join(&shown_name(key)), errors);
                }
            }
        }
        _ => {}
    }
}

/// Whether a field must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Required,
    Optional,
}

/// A JSON object being parsed, with the path that leads to it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'v> {
    map: &'v Map<String, Value>,
    path: &'v str,
}

impl<'v> Input<'v> {
    /// The request body; it must be an object.
    pub fn root(value: &'v Value, errors: &mut Errors) -> Option<Self> {
        // No store keeps a NUL in text (PostgreSQL refuses it): refused here, by field, for
        // every body alike.
        refuse_nul(value, "", errors);
        match value {
            Value::Object(map) => Some(Self { map, path: "" }),
            _ => {
                errors.push("", "the request body must be a JSON object");
                None
            }
        }
    }

    fn field_path(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    /// Reports every field not in `allowed`.
    pub fn known(&self, allowed: &[&str], errors: &mut Errors) {
        for key in self.map.keys() {
            if !allowed.contains(&key.as_str()) {
                errors.push(self.field_path(&shown_name(key)), "unknown field");
            }
        }
    }

    /// True when the key is present and not null.
    pub fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    fn get(&self, key: &str, need: Need, errors: &mut Errors) -> Option<&'v Value> {
        match self.map.get(key) {
            Some(Value::Null) | None => {
                if need == Need::Required {
                    errors.push(self.field_path(key), "is required");
                }
                None
            }
            Some(v) => Some(v),
        }
    }

    /// A string of `min..=max` characters (trimmed of surrounding white space).
    pub fn string(
        &self,
        key: &str,
        need: Need,
        min: usize,
        max: usize,
        errors: &mut Errors,
    ) -> Option<String> {
        let value = self.get(key, need, errors)?;
        let Some(s) = value.as_str() else {
            errors.push(self.field_path(key), format!("must be a string, not {}", kind(value)));
            return None;
        };
        let s = s.trim();
        let len = s.chars().count();
        if len < min {
            let msg = if min == 1 {
                "must not be empty".to_owned()
            } else {
                format!("must be at least {min} characters")
            };
            errors.push(self.field_path(key), msg);
            return None;
        }
        if len > max {
            errors.push(self.field_path(key), format!("must be at most {max} characters"));
            return None;
        }
        Some(s.to_owned())
    }

    /// Text kept exactly as sent (no trimming): scripts, templates.
    pub fn text(&self, key: &str, need: Need, max: usize, errors: &mut Errors) -> Option<String> {
        let value = self.get(key, need, errors)?;
        match value.as_str() {
            Some(s) if s.chars().count() <= max => Some(s.to_owned()),
            Some(_) => {
                errors.push(self.field_path(key), format!("must be at most {max} characters"));
                None
            }
            None => {
                errors.push(self.field_path(key), format!("must be a string, not {}", kind(value)));
                None
            }
        }
    }

    /// A string that `check` accepts; `what` names the expected form in the error.
    pub fn string_with(
        &self,
        key: &str,
        need: Need,
        max: usize,
        what: &str,
        check: impl Fn(&str) -> bool,
        errors: &mut Errors,
    ) -> Option<String> {
        let s = self.string(key, need, 1, max, errors)?;
        if check(&s) {
            Some(s)
        } else {
            errors.push(self.field_path(key), format!("must be {what}"));
            None
        }
    }

    /// One of `choices`.
    pub fn choice(&self, key: &str, need: Need, choices: &[&str], errors: &mut Errors) -> Option<String> {
        let s = self.string(key, need, 1, 64, errors)?;
        if choices.contains(&s.as_str()) {
            Some(s)
        } else {
            errors.push(self.field_path(key), format!("must be one of: {}", choices.join(", ")));
            None
        }
    }

    /// An integer within `min..=max`.
    pub fn int(&self, key: &str, need: Need, min: i64, max: i64, errors: &mut Errors) -> Option<i64> {
        let value = self.get(key, need, errors)?;
        let Some(n) = value.as_i64() else {
            let msg = if value.is_number() {
                "must be a whole number".to_owned()
            } else {
                format!("must be an integer, not {}", kind(value))
            };
            errors.push(self.field_path(key), msg);
            return None;
        };
        if n < min {
            let msg =
                if min == 0 { "must not be negative".to_owned() } else { format!("must be at least {min}") };
            errors.push(self.field_path(key), msg);
            return None;
        }
        if n > max {
            errors.push(self.field_path(key), format!("must be at most {max}"));
            return None;
        }
        Some(n)
    }

    /// A boolean.
    pub fn boolean(&self, key: &str, need: Need, errors: &mut Errors) -> Option<bool> {
        let value = self.get(key, need, errors)?;
        match value.as_bool() {
            Some(b) => Some(b),
            None => {
                errors.push(self.field_path(key), format!("must be a boolean, not {}", kind(value)));
                None
            }
        }
    }

    /// A nested object; `parse` reads its fields. `scratch` holds the nested path.
    pub fn object<T>(
        &self,
        key: &str,
        need: Need,
        errors: &mut Errors,
        parse: impl FnOnce(Input<'_>, &mut Errors) -> T,
    ) -> Option<T> {
        let value = self.get(key, need, errors)?;
        let Value::Object(map) = value else {
            errors.push(self.field_path(key), format!("must be an object, not {}", kind(value)));
            return None;
        };
        let path = self.field_path(key);
        let before = errors.0.len();
        let parsed = parse(Input { map, path: &path }, errors);
        (errors.0.len() == before).then_some(parsed)
    }

    /// An array of objects of `min..=max` items, each read by `parse`.
    pub fn objects<T>(
        &self,
        key: &str,
        need: Need,
        (min, max): (usize, usize),
        errors: &mut Errors,
        mut parse: impl FnMut(Input<'_>, &mut Errors) -> T,
    ) -> Option<Vec<T>> {
        let value = self.get(key, need, errors)?;
        let Value::Array(items) = value else {
            errors.push(self.field_path(key), format!("must be an array, not {}", kind(value)));
            return None;
        };
        if items.len() < min || items.len() > max {
            errors.push(self.field_path(key), format!("must have between {min} and {max} items"));
            return None;
        }
        let before = errors.0.len();
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", self.field_path(key));
            match item {
                Value::Object(map) => out.push(parse(Input { map, path: &path }, errors)),
                other => errors.push(path, format!("must be an object, not {}", kind(other))),
            }
        }
        (errors.0.len() == before).then_some(out)
    }

    /// An array of at most `max_items` strings of at most `max_len` characters each.
    pub fn strings(
        &self,
        key: &str,
        max_items: usize,
        max_len: usize,
        errors: &mut Errors,
    ) -> Option<Vec<String>> {
        let value = self.get(key, Need::Optional, errors)?;
        let Value::Array(items) = value else {
            errors.push(self.field_path(key), format!("must be an array of strings, not {}", kind(value)));
            return None;
        };
        if items.len() > max_items {
            errors.push(self.field_path(key), format!("must have at most {max_items} items"));
            return None;
        }
        let before = errors.0.len();
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) if s.chars().count() <= max_len => out.push(s.trim().to_owned()),
                Some(_) => errors.push(
                    format!("{}[{i}]", self.field_path(key)),
                    format!("must be at most {max_len} characters"),
                ),
                None => errors.push(
                    format!("{}[{i}]", self.field_path(key)),
                    format!("must be a string, not {}", kind(item)),
                ),
            }
        }
        (errors.0.len() == before).then_some(out)
    }

    /// A free-form object of string values (client metadata), at most 20 keys.
    pub fn metadata(&self, key: &str, errors: &mut Errors) -> Option<Map<String, Value>> {
        let value = self.get(key, Need::Optional, errors)?;
        let Value::Object(map) = value else {
            errors.push(self.field_path(key), format!("must be an object, not {}", kind(value)));
            return None;
        };
        if map.len() > 20 {
            errors.push(self.field_path(key), "must have at most 20 keys");
            return None;
        }
        for (k, v) in map {
            let ok = k.chars().count() <= 40 && v.as_str().is_some_and(|s| s.chars().count() <= 500);
            if !ok {
                errors.push(
                    format!("{}.{k}", self.field_path(key)),
                    "keys are at most 40 characters and values strings of at most 500",
                );
                return None;
            }
        }
        Some(map.clone())
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A plausible e-mail address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && s.chars().all(|c| c.is_ascii_graphic() || !c.is_ascii())
        && domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

/// ISO 3166-1 alpha-2 country codes.
pub fn is_country(s: &str) -> bool {
    s.len() == 2 && COUNTRIES.split(' ').any(|c| c == s)
}

/// ISO 4217 currency codes in use.
pub fn is_currency(s: &str) -> bool {
    s.len() == 3 && CURRENCIES.split(' ').any(|c| c == s)
}

const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

const CURRENCIES: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_offending_field_is_reported() {
        let body = json!({"name": "", "qty": -1, "extra": 1, "addr": {"country": "ZZ"}, "count": "3"});
        let mut e = Errors::default();
        let input = Input::root(&body, &mut e).expect("object");
        input.known(&["name", "qty", "addr", "count", "email"], &mut e);
        input.string("name", Need::Required, 1, 10, &mut e);
        input.int("qty", Need::Required, 0, 10, &mut e);
        input.int("count", Need::Required, 0, 10, &mut e);
        input.string_with("email", Need::Required, 254, "an e-mail address", is_email, &mut e);
        input.object("addr", Need::Required, &mut e, |a, e| {
            a.string_with("country", Need::Required, 2, "an ISO 3166-1 alpha-2 code", is_country, e)
        });
        let fields: Vec<_> = e.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["extra", "name", "qty", "count", "email", "addr.country"]);
    }

    #[test]
    fn emails_countries_currencies() {
        assert!(is_email("contact@acmecorp.com"));
        for bad in ["", "a", "a@b", "@b.com", "a@b..com", "a b@c.com", "a@b.com.", "a@@b.com"] {
            assert!(!is_email(bad), "{bad}");
        }
        assert!(is_country("US") && !is_country("us") && !is_country("ZZ"));
        assert!(is_currency("EUR") && !is_currency("eur") && !is_currency("XXX"));
    }
}
