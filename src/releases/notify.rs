//! Calls to nodes' admin API from the command line (`s3edge purge`, and
//! `publish` / `rollback` with `--admin URL`): one small HTTP/1.1 POST with the
//! token from `S3EDGE_ADMIN_TOKEN`.

use std::io::{Read, Write};
use std::time::Duration;

use super::admin::{SwitchRequest, SWITCH_PATH};
use super::ReleaseId;
use crate::admin::ADMIN_TOKEN_ENV;

/// How long an admin call may take (a purge waits for its barrier).
pub const ADMIN_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminCallError {
    #[error(
        "--admin must be an http:// URL of a host and port, e.g. http://127.0.0.1:9090 (got `{0}`)"
    )]
    NotHttp(String),
    #[error("cannot reach the admin listener at {0}: {1}")]
    Io(String, std::io::Error),
    #[error(
        "{ADMIN_TOKEN_ENV} holds a control character inside it, which no HTTP field can carry"
    )]
    BadToken,
}

/// The `host:port` of an `--admin` URL (`http://127.0.0.1:9090`, a trailing
/// `/` allowed): commands check every one before they change anything, so a
/// malformed one is a usage error, not a failure after a release went live.
pub fn admin_authority(admin: &str) -> Result<&str, AdminCallError> {
    let refused = || AdminCallError::NotHttp(admin.to_string());
    let authority = admin
        .strip_prefix("http://")
        .ok_or_else(refused)?
        .trim_end_matches('/');
    let (host, port) = authority.rsplit_once(':').ok_or_else(refused)?;
    if host.is_empty()
        || host.contains(['/', '?', '#', '@'])
        || port.is_empty()
        || port.parse::<u16>().is_err()
    {
        return Err(refused());
    }
    Ok(authority)
}

/// POSTs `body` (JSON) to `path` on the admin listener at `admin`. Returns the
/// status code and the body.
pub fn post_json(admin: &str, path: &str, body: &str) -> Result<(u16, String), AdminCallError> {
    let authority = admin_authority(admin)?;
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(token) = crate::admin::token_from_env(ADMIN_TOKEN_ENV) {
        if token.chars().any(char::is_control) {
            return Err(AdminCallError::BadToken);
        }
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let io = |e| AdminCallError::Io(authority.to_string(), e);
    let mut stream = std::net::TcpStream::connect(authority).map_err(io)?;
    stream
        .set_read_timeout(Some(ADMIN_CALL_TIMEOUT))
        .map_err(io)?;
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(io)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.trim().to_string()))
}

/// Tells each node to re-read the site's pointer and serve `release`. Returns
/// one line per node that did not switch.
pub async fn switch_nodes(admins: &[String], site: &str, release: &ReleaseId) -> Vec<String> {
    let body = serde_json::to_string(&SwitchRequest {
        site: site.to_string(),
        release: Some(release.to_string()),
    })
    .unwrap_or_default();
    let calls = admins.iter().map(|admin| {
        let (admin, body) = (admin.clone(), body.clone());
        tokio::task::spawn_blocking(move || post_json(&admin, SWITCH_PATH, &body))
    });
    let answers = futures_util::future::join_all(calls).await;
    let mut failed = Vec::new();
    for (admin, answer) in admins.iter().zip(answers) {
        match answer {
            Ok(Ok((200, _))) => {}
            Ok(Ok((status, body))) => failed.push(format!("{admin}: HTTP {status} {body}")),
            Ok(Err(e)) => failed.push(format!("{admin}: {e}")),
            Err(e) => failed.push(format!("{admin}: {e}")),
        }
    }
    failed
}
