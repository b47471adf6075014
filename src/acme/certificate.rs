//! A site's ACME certificate: the stored record (hosts, PEM chain, PEM key) and
//! the runtime value the TLS resolver presents.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use super::schedule::renewal_time;

/// What is kept in storage for one site: one JSON document, written whole, so a
/// reader never sees a certificate without its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCertificate {
    /// The names the certificate was ordered for, in the site file's order.
    pub hosts: Vec<String>,
    /// PEM chain, leaf first, as the CA returned it.
    pub certificate_chain: String,
    /// PEM PKCS#8 private key.
    pub private_key: String,
}

/// A certificate in service for one site.
#[derive(Debug)]
pub struct SiteCertificate {
    pub hosts: Vec<String>,
    pub key: Arc<CertifiedKey>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The leaf's serial number in hex, for logs and tests.
    pub serial: String,
    pub stored: StoredCertificate,
}

/// Why a stored or issued certificate cannot be put in service.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("the certificate chain is not PEM: {0}")]
    Pem(String),
    #[error("the certificate chain is empty")]
    Empty,
    #[error("the private key is not usable: {0}")]
    Key(String),
    #[error("the leaf certificate cannot be parsed: {0}")]
    Parse(String),
}

impl SiteCertificate {
    /// Parses a stored record: chain, key, and the leaf's validity dates.
    pub fn from_stored(stored: StoredCertificate) -> Result<SiteCertificate, CertificateError> {
        let chain = CertificateDer::pem_slice_iter(stored.certificate_chain.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CertificateError::Pem(e.to_string()))?;
        let leaf = chain.first().ok_or(CertificateError::Empty)?.clone();
        let key = PrivateKeyDer::from_pem_slice(stored.private_key.as_bytes())
            .map_err(|e| CertificateError::Key(e.to_string()))?;
        let signing_key = crate::tls::provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| CertificateError::Key(e.to_string()))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&leaf)
            .map_err(|e| CertificateError::Parse(e.to_string()))?;
        let validity = parsed.validity();
        let not_before = unix_time(validity.not_before.timestamp());
        let not_after = unix_time(validity.not_after.timestamp());
        let serial = parsed.raw_serial_as_string().replace(':', "");
        Ok(SiteCertificate {
            hosts: stored.hosts.clone(),
            key: Arc::new(CertifiedKey::new(chain, signing_key)),
            not_before,
            not_after,
            serial,
            stored,
        })
    }

    /// When this certificate should be replaced (see [`renewal_time`]).
    pub fn renewal_time(&self) -> SystemTime {
        renewal_time(self.not_before, self.not_after)
    }

    /// Whether it was ordered for exactly these names (any order).
    pub fn is_for(&self, hosts: &[String]) -> bool {
        let mut mine = self.hosts.clone();
        let mut wanted = hosts.to_vec();
        mine.sort();
        wanted.sort();
        mine == wanted
    }

    /// Whether it names any of `hosts` (serving it for those is better than
    /// nothing while one for all of them is ordered).
    pub fn shares_a_host(&self, hosts: &[String]) -> bool {
        self.hosts.iter().any(|mine| hosts.contains(mine))
    }

    /// Whether it is still within its validity period at `now`.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

/// Seconds since the Unix epoch as a time (dates before 1970 clamp to the epoch).
fn unix_time(seconds: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}
