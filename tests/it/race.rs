//! The concurrency harness: requests released together by a barrier against the real server,
//! for any endpoint. Each answer comes back as status and JSON body, in the order sent.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Barrier;

/// Sends every request at once (each on its own task, all waiting on one barrier) and returns
/// the answers in order.
pub(crate) async fn race(requests: Vec<reqwest::RequestBuilder>) -> Vec<(u16, Value)> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let response = request.send().await.expect("send");
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.expect("request task"));
    }
    answers
}

/// How many answers had each status.
pub(crate) fn count(answers: &[(u16, Value)], status: u16) -> usize {
    answers.iter().filter(|(s, _)| *s == status).count()
}
