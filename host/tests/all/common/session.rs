//! A signed-in browser for tests: the session cookie, sent back on every request.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{TestServer, client};

/// A signed-in browser: the session cookie, sent back on every request.
#[derive(Clone, Default)]
pub struct Session {
    pub cookie: Option<String>,
}

impl Session {
    pub async fn send(
        &mut self,
        server: &TestServer,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = client().request(method, server.url(path));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        if let Some(set) = response.headers().get("set-cookie") {
            let set = set.to_str().unwrap();
            self.cookie =
                Some(set.split(';').next().unwrap().to_string()).filter(|c| c != "ham_session=");
        }
        response
    }

    pub async fn json(
        &mut self,
        server: &TestServer,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let response = self.send(server, method, path, body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

pub fn credentials(username: &str) -> Option<Value> {
    Some(json!({ "username": username, "password": format!("{username}-secret-pw") }))
}

impl Session {
    /// Registers `username` (the first account becomes the admin) and keeps its
    /// session.
    pub async fn register(server: &TestServer, username: &str) -> Self {
        let mut session = Self::default();
        let (status, body) = session
            .json(
                server,
                Method::POST,
                "/api/auth/register",
                credentials(username),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        session
    }
}
