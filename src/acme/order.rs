//! One certificate order (RFC 8555 section 7.4): new order for the site's exact
//! hosts, one challenge answered per pending authorization, finalize with a
//! fresh ECDSA P-256 key, download the chain.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{Account, AuthorizationStatus, Identifier, NewOrder, OrderStatus, RetryPolicy};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};

use super::certificate::StoredCertificate;
use super::challenge::{tls_alpn01_certificate, Answer, ChallengeKind, Challenges};
use super::lock::{KeyGuard, Releases};
use super::storage::Storage;
use super::AcmeError;

/// HTTP-01 answers published in shared storage, so that whichever node of the
/// ring the CA's validation request reaches can answer it.
pub struct SharedAnswers<'a> {
    pub storage: &'a Arc<dyn Storage>,
    /// Where the guards' deletes are tracked.
    pub releases: &'a Releases,
    /// Key prefix of the answers: `CA/challenges/`.
    pub prefix: String,
}

impl SharedAnswers<'_> {
    async fn publish(&self, token: &str, key_authorization: &str) -> Result<KeyGuard, AcmeError> {
        let key = format!("{}{token}", self.prefix);
        self.storage
            .store(&key, key_authorization.as_bytes())
            .await?;
        Ok(KeyGuard::new(self.storage, self.releases, &key))
    }
}

/// How long the CA gets to validate the challenges and to issue.
const POLL_TIMEOUT: Duration = Duration::from_secs(120);

fn polling() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(POLL_TIMEOUT)
}

fn ca_error(step: &str) -> impl Fn(instant_acme::Error) -> AcmeError + '_ {
    move |e| AcmeError::from_ca(step, e)
}

/// Orders a certificate for `hosts`, answering `kind` challenges through
/// `challenges` (withdrawn when this returns, whatever the outcome).
pub async fn order(
    account: &Account,
    hosts: &[String],
    kind: ChallengeKind,
    challenges: &Arc<Challenges>,
    shared: Option<&SharedAnswers<'_>>,
) -> Result<StoredCertificate, AcmeError> {
    let identifiers: Vec<Identifier> = hosts.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(ca_error("new order"))?;

    // Each answer is in place before the CA hears it may validate; all are
    // withdrawn when `answers` and `published` drop, whatever the outcome.
    let mut answers = Vec::new();
    let mut published = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(ca_error("authorization"))?;
        let host = authorization.identifier().to_string();
        match authorization.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            status => {
                return Err(AcmeError::Ca(format!(
                    "the authorization for {host} is {status:?}"
                )))
            }
        }
        let mut challenge = authorization.challenge(kind.acme_type()).ok_or_else(|| {
            AcmeError::Ca(format!("the CA offers no {kind} challenge for {host}"))
        })?;
        let key_authorization = challenge.key_authorization();
        let answer = match kind {
            ChallengeKind::Http01 => Answer::Http01 {
                token: challenge.token.clone(),
                key_authorization: key_authorization.as_str().to_string(),
            },
            ChallengeKind::TlsAlpn01 => Answer::TlsAlpn01 {
                host: host.to_ascii_lowercase(),
                certificate: tls_alpn01_certificate(&host, key_authorization.digest().as_ref())
                    .map_err(|e| AcmeError::Certificate(e.to_string()))?,
            },
        };
        if let (
            Some(shared),
            Answer::Http01 {
                token,
                key_authorization,
            },
        ) = (shared, &answer)
        {
            published.push(shared.publish(token, key_authorization).await?);
        }
        answers.push(challenges.register(vec![answer]));
        challenge
            .set_ready()
            .await
            .map_err(ca_error("challenge ready"))?;
    }

    let status = order
        .poll_ready(&polling())
        .await
        .map_err(ca_error("validation"))?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Ca(format!(
            "the order is {status:?} after {kind} validation{}",
            failure_detail(&mut order).await
        )));
    }

    let mut params = CertificateParams::new(hosts.to_vec())
        .map_err(|e| AcmeError::Certificate(e.to_string()))?;
    params.distinguished_name = DistinguishedName::new();
    let key = KeyPair::generate().map_err(|e| AcmeError::Certificate(e.to_string()))?;
    let csr = params
        .serialize_request(&key)
        .map_err(|e| AcmeError::Certificate(e.to_string()))?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(ca_error("finalize"))?;
    let chain = order
        .poll_certificate(&polling())
        .await
        .map_err(ca_error("certificate"))?;
    Ok(StoredCertificate {
        hosts: hosts.to_vec(),
        certificate_chain: chain,
        private_key: key.serialize_pem(),
    })
}

/// The CA's reason for a failed authorization, for the log line.
async fn failure_detail(order: &mut instant_acme::Order) -> String {
    let mut details = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        if authorization.refresh().await.is_err() {
            continue;
        }
        for challenge in &authorization.challenges {
            if let Some(error) = &challenge.error {
                details.push(format!("{}: {error}", authorization.identifier()));
            }
        }
    }
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({})", details.join("; "))
    }
}
