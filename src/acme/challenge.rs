//! The answers to the CA's validation requests while an order is open.
//!
//! - HTTP-01 (RFC 8555 8.3): `GET /.well-known/acme-challenge/TOKEN` on the plain
//!   listener answers the key authorization as `text/plain`.
//! - TLS-ALPN-01 (RFC 8737): a handshake offering only the `acme-tls/1` protocol
//!   and naming the host gets a self-signed certificate for that host carrying
//!   the `acmeIdentifier` extension (the SHA-256 of the key authorization).
//!
//! An order registers its answers through [`Challenges::register`], which
//! returns a guard: the answers are withdrawn when the guard is dropped, so an
//! order that fails or is cancelled leaves nothing behind.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::ClientHello;
use rustls::sign::CertifiedKey;

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737 section 6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The path prefix of HTTP-01 validation requests (RFC 8555 section 8.3).
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// The two challenge types s3edge answers (DNS-01 needs a DNS provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// Answered on the TLS listener.
    TlsAlpn01,
    /// Answered on the plain listener.
    Http01,
}

impl ChallengeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
            ChallengeKind::Http01 => "http-01",
        }
    }

    /// Parses `tls-alpn-01` or `http-01` (the `--acme-challenge` values).
    pub fn parse(text: &str) -> Result<ChallengeKind, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "tls-alpn-01" => Ok(ChallengeKind::TlsAlpn01),
            "http-01" => Ok(ChallengeKind::Http01),
            other => Err(format!(
                "`{other}` is not a challenge s3edge answers; use tls-alpn-01 or http-01"
            )),
        }
    }

    pub(super) fn acme_type(self) -> instant_acme::ChallengeType {
        match self {
            ChallengeKind::TlsAlpn01 => instant_acme::ChallengeType::TlsAlpn01,
            ChallengeKind::Http01 => instant_acme::ChallengeType::Http01,
        }
    }
}

impl fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a ClientHello is a TLS-ALPN-01 validation: it offers `acme-tls/1`.
pub fn is_validation_handshake(hello: &ClientHello<'_>) -> bool {
    hello
        .alpn()
        .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
}

/// The token of an HTTP-01 validation request path, if it is one.
pub fn http01_token(path: &str) -> Option<&str> {
    let token = path.strip_prefix(HTTP01_PREFIX)?;
    // RFC 8555 8.1: tokens are base64url, so never contain `/` or `%`.
    (!token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(token)
}

#[derive(Default)]
struct Answers {
    /// HTTP-01: token -> key authorization.
    http: HashMap<String, String>,
    /// TLS-ALPN-01: host -> validation certificate.
    tls: HashMap<String, Arc<CertifiedKey>>,
}

/// The answers of every open order, and how many validation requests got one.
#[derive(Default)]
pub struct Challenges {
    answers: RwLock<Answers>,
    answered_http: AtomicU64,
    answered_tls: AtomicU64,
}

/// One answer to put in place for an order.
pub enum Answer {
    Http01 {
        token: String,
        key_authorization: String,
    },
    TlsAlpn01 {
        host: String,
        certificate: Arc<CertifiedKey>,
    },
}

/// Withdraws the answers it registered when dropped.
pub struct ChallengeGuard {
    challenges: Arc<Challenges>,
    tokens: Vec<String>,
    hosts: Vec<String>,
}

impl Drop for ChallengeGuard {
    fn drop(&mut self) {
        let mut answers = self
            .challenges
            .answers
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for token in &self.tokens {
            answers.http.remove(token);
        }
        for host in &self.hosts {
            answers.tls.remove(host);
        }
    }
}

impl Challenges {
    /// Puts `answers` in place until the returned guard is dropped.
    pub fn register(self: &Arc<Self>, list: Vec<Answer>) -> ChallengeGuard {
        let mut guard = ChallengeGuard {
            challenges: Arc::clone(self),
            tokens: Vec::new(),
            hosts: Vec::new(),
        };
        let mut answers = self.answers.write().unwrap_or_else(|e| e.into_inner());
        for answer in list {
            match answer {
                Answer::Http01 {
                    token,
                    key_authorization,
                } => {
                    answers.http.insert(token.clone(), key_authorization);
                    guard.tokens.push(token);
                }
                Answer::TlsAlpn01 { host, certificate } => {
                    answers.tls.insert(host.clone(), certificate);
                    guard.hosts.push(host);
                }
            }
        }
        guard
    }

    /// The key authorization for an HTTP-01 token, counted as answered.
    pub fn http01(&self, token: &str) -> Option<String> {
        let answer = self
            .answers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .http
            .get(token)
            .cloned();
        if answer.is_some() {
            self.answered_http.fetch_add(1, Ordering::Relaxed);
        }
        answer
    }

    /// The TLS-ALPN-01 certificate for a validation handshake naming `host`.
    pub fn tls_alpn01(&self, host: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let host = host?.trim_end_matches('.').to_ascii_lowercase();
        let answer = self
            .answers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .tls
            .get(&host)
            .cloned();
        if answer.is_some() {
            self.answered_tls.fetch_add(1, Ordering::Relaxed);
        }
        answer
    }

    /// How many validation requests of this kind were answered.
    pub fn answered(&self, kind: ChallengeKind) -> u64 {
        match kind {
            ChallengeKind::Http01 => self.answered_http.load(Ordering::Relaxed),
            ChallengeKind::TlsAlpn01 => self.answered_tls.load(Ordering::Relaxed),
        }
    }
}

/// Why a TLS-ALPN-01 validation certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ValidationCertificateError {
    #[error("cannot generate the validation certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the validation key cannot sign: {0}")]
    Key(rustls::Error),
}

/// The TLS-ALPN-01 validation certificate for `host` (RFC 8737 section 3):
/// self-signed, `host` as its only subjectAltName, and the critical
/// `id-pe-acmeIdentifier` extension holding the SHA-256 digest of the key
/// authorization.
pub fn tls_alpn01_certificate(
    host: &str,
    digest: &[u8],
) -> Result<Arc<CertifiedKey>, ValidationCertificateError> {
    let mut params = CertificateParams::new(vec![host.to_string()])?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    let key = KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing_key = crate::tls::provider()
        .key_provider
        .load_private_key(der)
        .map_err(ValidationCertificateError::Key)?;
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(certificate.der().to_vec())],
        signing_key,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_tokens_under_the_challenge_path_are_validation_requests() {
        let cases = [
            (
                "a base64url token",
                "/.well-known/acme-challenge/abc-DEF_123",
                Some("abc-DEF_123"),
            ),
            ("an empty token", "/.well-known/acme-challenge/", None),
            ("a nested path", "/.well-known/acme-challenge/a/b", None),
            (
                "a percent-encoded token",
                "/.well-known/acme-challenge/a%2Fb",
                None,
            ),
            ("another path", "/index.html", None),
        ];
        for (name, path, expected) in cases {
            assert_eq!(http01_token(path), expected, "{name}");
        }
    }

    #[test]
    fn answers_are_withdrawn_when_the_guard_drops() {
        let challenges = Arc::new(Challenges::default());
        let certificate = tls_alpn01_certificate("a.test", &[7; 32]).expect("certificate");
        let guard = challenges.register(vec![
            Answer::Http01 {
                token: "tok".into(),
                key_authorization: "tok.thumb".into(),
            },
            Answer::TlsAlpn01 {
                host: "a.test".into(),
                certificate,
            },
        ]);
        assert_eq!(challenges.http01("tok").as_deref(), Some("tok.thumb"));
        assert!(challenges.tls_alpn01(Some("A.test.")).is_some());
        assert!(challenges.tls_alpn01(Some("b.test")).is_none());
        drop(guard);
        assert_eq!(challenges.http01("tok"), None);
        assert!(challenges.tls_alpn01(Some("a.test")).is_none());
        assert_eq!(challenges.answered(ChallengeKind::Http01), 1);
        assert_eq!(challenges.answered(ChallengeKind::TlsAlpn01), 1);
    }
}
