//! A throwaway certificate authority for tests (rcgen): leaf certificates for
//! any names, written as the PEM files a site's `[tls]` names.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
use tempfile::TempDir;

/// A CA and the directory its leaves are written to.
pub struct Pki {
    pub dir: TempDir,
    pub ca: CertifiedIssuer<'static, KeyPair>,
}

/// One leaf certificate: its DER (to compare with what a server presents) and
/// its PEM files.
pub struct Leaf {
    pub der: CertificateDer<'static>,
    /// The chain: the leaf, then the CA.
    pub cert: PathBuf,
    /// The private key (PKCS#8 ECDSA P-256).
    pub key: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "s3edge test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki {
            dir: TempDir::new().unwrap(),
            ca,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The CA as a root for reqwest.
    pub fn reqwest_root(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.ca_pem().as_bytes()).unwrap()
    }

    /// A certificate for `names` signed by the CA, written as `<stem>.pem` (leaf
    /// then CA: a chain) and `<stem>.key`; an existing pair is overwritten (a
    /// renewal).
    pub fn leaf(&self, stem: &str, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let leaf = Leaf {
            der: cert.der().clone(),
            cert: self.path(&format!("{stem}.pem")),
            key: self.path(&format!("{stem}.key")),
        };
        std::fs::write(&leaf.cert, format!("{}{}", cert.pem(), self.ca_pem())).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }
}

impl Leaf {
    /// A site file's `[tls]` section naming this leaf's files.
    pub fn tls_section(&self) -> String {
        format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n",
            self.cert.display().to_string(),
            self.key.display().to_string()
        )
    }
}
