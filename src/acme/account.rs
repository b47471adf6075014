//! The ACME account: created once per CA directory, its credentials (key and
//! account URL) kept in storage and reused after a restart.

use std::path::Path;
use std::sync::Arc;

use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use instant_acme::{Account, AccountCredentials, BodyWrapper, HttpClient, NewAccount};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::storage::Storage;
use super::AcmeError;

/// The HTTPS client that talks to the CA: the system's trusted roots, plus
/// `--acme-ca-root` when given (a private or test CA).
pub fn http_client(extra_root: Option<&Path>) -> Result<Box<dyn HttpClient>, AcmeError> {
    let provider = crate::tls::provider();
    let mut extra = Vec::new();
    if let Some(path) = extra_root {
        let roots = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| AcmeError::CaRoot(format!("{}: {e}", path.display())))?;
        if roots.is_empty() {
            return Err(AcmeError::CaRoot(format!(
                "{}: no certificate in the file; expected a PEM root (`-----BEGIN CERTIFICATE-----`)",
                path.display()
            )));
        }
        extra = roots;
    }
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| AcmeError::CaRoot(e.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AcmeError::CaRoot(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    let client: HyperClient<_, BodyWrapper<bytes::Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(connector);
    Ok(Box::new(client))
}

/// The account for `directory`: the stored one, or a new one (terms of service
/// agreed, `email` as contact) that is then stored.
pub async fn load_or_create(
    storage: &Arc<dyn Storage>,
    key: &str,
    directory: &str,
    email: Option<&str>,
    extra_root: Option<&Path>,
) -> Result<Account, AcmeError> {
    if let Some(bytes) = storage.load(key).await? {
        let credentials: AccountCredentials = serde_json::from_slice(&bytes).map_err(|e| {
            AcmeError::Account(format!(
                "{} in {}: unreadable account ({e}); remove it to register a new account",
                key,
                storage.describe()
            ))
        })?;
        return Account::builder_with_http(http_client(extra_root)?)
            .from_credentials(credentials)
            .await
            .map_err(|e| AcmeError::from_ca("directory", e));
    }
    let contact = email.map(|address| format!("mailto:{address}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = Account::builder_with_http(http_client(extra_root)?)
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            directory.to_string(),
            None,
        )
        .await
        .map_err(|e| AcmeError::from_ca("new account", e))?;
    let json =
        serde_json::to_vec_pretty(&credentials).map_err(|e| AcmeError::Account(e.to_string()))?;
    storage.store(key, &json).await?;
    tracing::info!(
        directory,
        account = account.id(),
        "ACME: account registered"
    );
    Ok(account)
}
