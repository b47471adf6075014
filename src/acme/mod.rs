//! Automatic certificates from an ACME CA (RFC 8555) for the sites with
//! `[tls] acme = true`.
//!
//! For each such site one task keeps a certificate for the site's exact hosts:
//!
//! 1. Adopt the stored certificate (`--acme-dir`, or the shared bucket) when it
//!    is for the same hosts and still valid: a restart makes no new order.
//! 2. Otherwise, or once its renewal time has come (30 days before expiry, or
//!    at two thirds of a shorter lifetime; `schedule.rs`), take the site's order
//!    lock (`lock.rs`), order (`order.rs`) answering TLS-ALPN-01 on the TLS
//!    listener or HTTP-01 on the plain one (`challenge.rs`), store the result
//!    and swap it in: new handshakes get it, open connections keep theirs.
//! 3. A failed order is logged and retried with a doubling delay, alternating
//!    the challenge type; the certificate in service keeps serving.
//!
//! Until a site has a certificate, handshakes naming its hosts fail (no
//! certificate is resolved); every other name keeps working. The TLS resolver
//! asks [`Acme::certificate`] and [`Acme::validation_certificate`]; the handler
//! asks [`Acme::http01`]; the metrics read [`Acme::expiries`].

pub mod account;
pub mod bucket;
pub mod certificate;
pub mod challenge;
pub mod http01;
pub mod lock;
pub mod metrics;
pub mod order;
pub mod schedule;
pub mod storage;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::sign::CertifiedKey;
use tokio::task::JoinHandle;

use crate::config::{CertificateSource, SiteConfig};
use certificate::{SiteCertificate, StoredCertificate};
use challenge::{ChallengeKind, Challenges};
use lock::{Locking, Releases};
use storage::{DirStorage, Storage, StorageError};

/// `--acme-directory` default: Let's Encrypt's production CA.
pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// `--acme-dir` default.
pub const DEFAULT_ACME_DIR: &str = ".s3edge-acme";
/// With shared storage, how often a node re-reads it for certificates that
/// another node obtained or renewed.
pub const SHARED_POLL: Duration = Duration::from_secs(60);

/// How the node obtains certificates (the `--acme-*` flags).
#[derive(Clone)]
pub struct AcmeOptions {
    /// The CA's directory URL (`--acme-directory`).
    pub directory: String,
    /// Contact address given to the CA (`--acme-email`).
    pub email: Option<String>,
    /// An extra trusted root for the CA's HTTPS (`--acme-ca-root`).
    pub ca_root: Option<PathBuf>,
    /// Where the account and certificates are kept (`--acme-dir`); unused when
    /// `storage` is set.
    pub dir: PathBuf,
    /// Shared storage in a bucket instead of `dir`, for a ring of nodes
    /// (`--acme-bucket*`); opened at start into `storage`.
    pub bucket: Option<bucket::AcmeBucket>,
    /// The storage to use instead of `dir` (the opened bucket; tests).
    pub storage: Option<Arc<dyn Storage>>,
    /// Challenge types in order of preference; a failed order retries with the
    /// next one (`--acme-challenge`).
    pub challenges: Vec<ChallengeKind>,
    /// First retry delay after a failure (doubles up to `retry_max`).
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// With shared storage: how often it is re-read.
    pub shared_poll: Duration,
    /// This node's name in order locks: its `--node-id`, else the host name
    /// (as the cluster names it), so that the nodes of a ring are told apart
    /// and a restarted node recognises the locks it left.
    pub node_name: String,
}

impl Default for AcmeOptions {
    fn default() -> Self {
        AcmeOptions {
            directory: LETS_ENCRYPT_PRODUCTION.to_string(),
            email: None,
            ca_root: None,
            dir: PathBuf::from(DEFAULT_ACME_DIR),
            bucket: None,
            storage: None,
            challenges: vec![ChallengeKind::TlsAlpn01, ChallengeKind::Http01],
            retry_min: schedule::DEFAULT_RETRY_MIN,
            retry_max: schedule::DEFAULT_RETRY_MAX,
            shared_poll: SHARED_POLL,
            node_name: crate::status::node_id(),
        }
    }
}

/// Why obtaining a certificate failed (logged, then retried).
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("ACME CA: {0}")]
    Ca(String),
    #[error("the CA does not know the stored account any more; registering a new one")]
    AccountUnknown,
    #[error("ACME account: {0}")]
    Account(String),
    #[error("--acme-ca-root {0}")]
    CaRoot(String),
    #[error("the issued certificate cannot be used: {0}")]
    Certificate(String),
    #[error("ACME storage {0}")]
    Storage(#[from] StorageError),
    #[error("the ACME client panicked ({0}); trying again later")]
    Panicked(String),
}

impl AcmeError {
    /// An error from the CA conversation at `step`; "account does not exist"
    /// (RFC 8555 7.3.1: the CA lost or removed it) is told apart so the account
    /// is registered again.
    pub fn from_ca(step: &str, error: instant_acme::Error) -> AcmeError {
        match &error {
            instant_acme::Error::Api(problem)
                if problem.r#type.as_deref()
                    == Some("urn:ietf:params:acme:error:accountDoesNotExist") =>
            {
                AcmeError::AccountUnknown
            }
            _ => AcmeError::Ca(format!("{step}: {error}")),
        }
    }
}

/// One acme site as the task keeping its certificate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AcmeSite {
    name: String,
    hosts: Vec<String>,
}

/// The sites with `acme = true` and their exact hosts (wildcards are refused by
/// validation).
fn acme_sites(sites: &[SiteConfig]) -> Vec<AcmeSite> {
    sites
        .iter()
        .filter(|site| {
            site.tls
                .as_ref()
                .is_some_and(|tls| tls.certificate == CertificateSource::Acme)
        })
        .map(|site| AcmeSite {
            name: site.name.clone(),
            hosts: site
                .hosts
                .iter()
                .filter_map(|host| host.exact().map(str::to_owned))
                .collect(),
        })
        .filter(|site| !site.hosts.is_empty())
        .collect()
}

/// `attempt`, with a panic inside it (instant-acme adds a CA's `Retry-After`
/// seconds to the clock unchecked, which panics on a huge value) turned into
/// a failed attempt: the site's task backs off and tries again, rather than
/// ending and never renewing its certificate in this process.
async fn unwound<T>(
    attempt: impl std::future::Future<Output = Result<T, AcmeError>>,
) -> Result<T, AcmeError> {
    use futures_util::FutureExt as _;
    std::panic::AssertUnwindSafe(attempt)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            Err(AcmeError::Panicked(what))
        })
}

/// A name safe as one storage key segment: the CA directory URL without its
/// scheme, every other character than `[A-Za-z0-9.-]` as `-`.
fn ca_segment(directory: &str) -> String {
    let rest = directory
        .split_once("://")
        .map_or(directory, |(_, rest)| rest);
    rest.trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The certificate manager of a node (see the module doc).
pub struct Acme {
    options: AcmeOptions,
    storage: Arc<dyn Storage>,
    /// Storage key prefix of this CA: `CA/`.
    ca: String,
    challenges: Arc<Challenges>,
    certificates: RwLock<HashMap<String, Arc<SiteCertificate>>>,
    account: tokio::sync::Mutex<Option<instant_acme::Account>>,
    tasks: Mutex<HashMap<String, (AcmeSite, JoinHandle<()>)>>,
    /// Lock and challenge-answer deletes still running.
    releases: Releases,
    orders: AtomicU64,
    failures: AtomicU64,
}

impl Drop for Acme {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, (_, task)) in tasks.drain() {
            task.abort();
        }
    }
}

impl Acme {
    pub fn new(options: AcmeOptions) -> Arc<Acme> {
        let storage = options
            .storage
            .clone()
            .unwrap_or_else(|| Arc::new(DirStorage::new(options.dir.clone())));
        Arc::new(Acme {
            ca: format!("{}/", ca_segment(&options.directory)),
            options,
            storage,
            challenges: Arc::new(Challenges::default()),
            certificates: RwLock::new(HashMap::new()),
            account: tokio::sync::Mutex::new(None),
            tasks: Mutex::new(HashMap::new()),
            releases: Releases::default(),
            orders: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// Puts the acme sites among `sites` under management: a task starts for each
    /// new site (or site whose hosts changed); a removed site's task stops and its
    /// certificate leaves service. Must run inside a Tokio runtime.
    pub fn set_sites(self: &Arc<Self>, sites: &[SiteConfig]) {
        let wanted = acme_sites(sites);
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|name, (site, task)| {
            let keep = wanted.contains(site);
            if !keep {
                task.abort();
                if !wanted.iter().any(|w| &w.name == name) {
                    self.certificates
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(name);
                }
            }
            keep
        });
        for site in wanted {
            if tasks.contains_key(&site.name) {
                continue;
            }
            tracing::info!(
                site = site.name,
                hosts = site.hosts.join(","),
                storage = self.storage.describe(),
                "ACME: managing the certificate"
            );
            let task = tokio::spawn(Arc::clone(self).maintain(site.clone()));
            tasks.insert(site.name.clone(), (site, task));
        }
    }

    /// Stops every site's task and waits until the locks and answers they held
    /// are removed from storage, so that a node stopped mid-order leaves no
    /// lock for the others (or its next start) to wait out. For a clean
    /// shutdown, before the runtime stops.
    pub async fn shutdown(&self) {
        let tasks: Vec<JoinHandle<()>> = self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, (_, task))| task)
            .collect();
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        self.releases.wait().await;
    }

    /// The certificate for a handshake that chose `site`, when that site has one
    /// from ACME and it names `server_name` (`None`: no SNI).
    pub fn certificate(&self, site: &str, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let certificates = self.certificates.read().unwrap_or_else(|e| e.into_inner());
        let certificate = certificates.get(site)?;
        let covered = server_name.is_none_or(|name| {
            let name = name.trim_end_matches('.');
            certificate
                .hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
        });
        covered.then(|| Arc::clone(&certificate.key))
    }

    /// The TLS-ALPN-01 certificate for a validation handshake naming `server_name`.
    pub fn validation_certificate(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.challenges.tls_alpn01(server_name)
    }

    /// The HTTP-01 key authorization for `token`, while its order is open on
    /// this node or, with shared storage, on another node of the ring.
    pub async fn http01(&self, token: &str) -> Option<String> {
        if let Some(answer) = self.challenges.http01(token) {
            return Some(answer);
        }
        if !self.storage.is_shared() {
            return None;
        }
        match self
            .storage
            .load(&format!("{}{token}", self.challenge_prefix()))
            .await
        {
            Ok(answer) => answer.and_then(|bytes| String::from_utf8(bytes).ok()),
            Err(e) => {
                tracing::warn!("ACME: cannot read a shared HTTP-01 answer: {e}");
                None
            }
        }
    }

    fn challenge_prefix(&self) -> String {
        format!("{}challenges/", self.ca)
    }

    /// `(site, expiry)` of every certificate in service, by site name
    /// (`s3edge_certificate_expiry_seconds{site}`).
    pub fn expiries(&self) -> Vec<(String, SystemTime)> {
        let certificates = self.certificates.read().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<_> = certificates
            .iter()
            .map(|(site, c)| (site.clone(), c.not_after))
            .collect();
        list.sort();
        list
    }

    /// Whether each acme site under management has a certificate in service
    /// that covers its hosts and is valid now, by site name
    /// (`s3edge_acme_certificate_valid{site}`): `false` before the first
    /// order succeeds and once the certificate expired.
    pub fn validity(&self) -> Vec<(String, bool)> {
        let now = SystemTime::now();
        let sites: Vec<AcmeSite> = self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|(site, _)| site.clone())
            .collect();
        let mut list: Vec<_> = sites
            .into_iter()
            .map(|site| {
                let valid = self
                    .installed(&site.name)
                    .is_some_and(|c| c.is_for(&site.hosts) && c.is_valid_at(now));
                (site.name, valid)
            })
            .collect();
        list.sort();
        list
    }

    /// The serial number (hex) of a site's certificate in service.
    pub fn serial(&self, site: &str) -> Option<String> {
        let certificates = self.certificates.read().unwrap_or_else(|e| e.into_inner());
        certificates.get(site).map(|c| c.serial.clone())
    }

    /// Certificates this node ordered and obtained since it started.
    pub fn orders(&self) -> u64 {
        self.orders.load(Ordering::Relaxed)
    }

    /// Orders or storage operations that failed since it started.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Validation requests answered, by challenge type.
    pub fn challenges_answered(&self, kind: ChallengeKind) -> u64 {
        self.challenges.answered(kind)
    }

    fn installed(&self, site: &str) -> Option<Arc<SiteCertificate>> {
        let certificates = self.certificates.read().unwrap_or_else(|e| e.into_inner());
        certificates.get(site).cloned()
    }

    fn install(&self, site: &str, certificate: SiteCertificate) {
        self.certificates
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(site.to_string(), Arc::new(certificate));
    }

    fn certificate_key(&self, site: &str) -> String {
        format!("{}certificates/{site}.json", self.ca)
    }

    fn failure_key(&self, site: &str) -> String {
        format!("{}failures/{site}.json", self.ca)
    }

    /// With shared storage: the failed orders for `site`'s hosts recorded by
    /// any node, if the record is for these hosts.
    async fn shared_failures(&self, site: &AcmeSite) -> Option<FailedOrders> {
        if !self.storage.is_shared() {
            return None;
        }
        let bytes = self
            .storage
            .load(&self.failure_key(&site.name))
            .await
            .ok()??;
        serde_json::from_slice::<FailedOrders>(&bytes)
            .ok()
            .filter(|record| record.hosts == site.hosts)
    }

    /// Keeps one site's certificate until the task is aborted.
    async fn maintain(self: Arc<Self>, site: AcmeSite) {
        let mut failures = 0u32;
        loop {
            let wait = match unwound(self.step(&site, failures)).await {
                Ok(wait) => {
                    failures = 0;
                    wait
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    if matches!(error, AcmeError::AccountUnknown) {
                        self.forget_account().await;
                    }
                    let delay = schedule::retry_delay(
                        failures,
                        self.options.retry_min,
                        self.options.retry_max,
                    );
                    let serving = self.installed(&site.name).map_or_else(
                        || "none yet: handshakes for its hosts fail".to_string(),
                        |c| format!("serial {} keeps serving", c.serial),
                    );
                    tracing::warn!(
                        site = site.name,
                        attempt = failures,
                        retry_in = ?delay,
                        "ACME: {error}; certificate in service: {serving}"
                    );
                    delay
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// One pass: adopt what storage holds, order if due. Returns how long to
    /// sleep before the next pass.
    async fn step(&self, site: &AcmeSite, failures: u32) -> Result<Duration, AcmeError> {
        self.adopt_stored(site).await?;
        if let Some(wait) = self.time_to_renewal(site) {
            return Ok(wait);
        }
        // With shared storage the retry schedule is the ring's: an order
        // another node made failed, and the next attempt is not due yet.
        // Each node used to keep its own, so N nodes made N times the failed
        // validations (Let's Encrypt allows 5 per name and hour).
        let shared = self.shared_failures(site).await;
        if let Some(wait) = shared.as_ref().and_then(FailedOrders::wait) {
            tracing::info!(
                site = site.name,
                failures = shared.as_ref().map_or(0, |r| r.failures),
                retry_in = ?wait,
                "ACME: the last order for these hosts failed; waiting for the next attempt"
            );
            return Ok(wait);
        }
        let lock_key = format!("{}locks/{}", self.ca, site.name);
        let guard = match lock::try_lock(
            &self.storage,
            &self.releases,
            &lock_key,
            &self.options.node_name,
        )
        .await?
        {
            Locking::Held(guard) => guard,
            Locking::Busy { holder } => {
                tracing::info!(
                    site = site.name,
                    holder,
                    "ACME: another node is ordering; waiting for its certificate"
                );
                return Ok(self.options.shared_poll);
            }
        };
        // Another node may have stored a certificate just before we took the lock.
        self.adopt_stored(site).await?;
        if let Some(wait) = self.time_to_renewal(site) {
            return Ok(wait);
        }
        let kind =
            self.options.challenges[failures as usize % self.options.challenges.len().max(1)];
        let ordered = match self.order(site, kind).await {
            // The CA lost the account (a reset, a test CA restarted): this is
            // no failure of the order, so register a new account and order
            // again now rather than after a retry delay.
            Err(AcmeError::AccountUnknown) => {
                tracing::warn!(
                    site = site.name,
                    "ACME: the CA does not know the stored account; registering a new one"
                );
                self.forget_account().await;
                self.order(site, kind).await
            }
            other => other,
        };
        let stored = match ordered {
            Ok(stored) => stored,
            Err(error) => {
                self.record_failure(site, shared, failures).await;
                return Err(error);
            }
        };
        if shared.is_some() {
            let _ = self.storage.delete(&self.failure_key(&site.name)).await;
        }
        let json = serde_json::to_vec_pretty(&stored)
            .map_err(|e| AcmeError::Certificate(e.to_string()))?;
        let certificate = SiteCertificate::from_stored(stored)
            .map_err(|e| AcmeError::Certificate(e.to_string()))?;
        self.storage
            .store(&self.certificate_key(&site.name), &json)
            .await?;
        drop(guard);
        self.orders.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            site = site.name,
            hosts = site.hosts.join(","),
            challenge = kind.as_str(),
            serial = certificate.serial,
            expires = %crate::http::date::format(certificate.not_after),
            renews = %crate::http::date::format(certificate.renewal_time()),
            "ACME: certificate obtained and in service"
        );
        self.install(&site.name, certificate);
        Ok(self.time_to_renewal(site).unwrap_or(self.options.retry_min))
    }

    /// With shared storage, records a failed order (lock held): the count
    /// (this node's or the ring's, whichever is higher, plus this one) and
    /// when the next attempt is due, so that no node orders before then.
    async fn record_failure(&self, site: &AcmeSite, shared: Option<FailedOrders>, local: u32) {
        if !self.storage.is_shared() {
            return;
        }
        let failures = shared
            .map_or(0, |r| r.failures)
            .max(local)
            .saturating_add(1);
        let delay = schedule::retry_delay(failures, self.options.retry_min, self.options.retry_max);
        let record = FailedOrders {
            hosts: site.hosts.clone(),
            failures,
            retry_at_ms: unix_millis(SystemTime::now() + delay),
        };
        if let Ok(json) = serde_json::to_vec(&record) {
            if let Err(e) = self
                .storage
                .store(&self.failure_key(&site.name), &json)
                .await
            {
                tracing::warn!(
                    site = site.name,
                    "ACME: cannot record the failed order: {e}"
                );
            }
        }
    }

    /// One order for the site's hosts with the account (registered if need be).
    async fn order(
        &self,
        site: &AcmeSite,
        kind: ChallengeKind,
    ) -> Result<StoredCertificate, AcmeError> {
        let account = self.account().await?;
        let shared = self.storage.is_shared().then(|| order::SharedAnswers {
            storage: &self.storage,
            releases: &self.releases,
            prefix: self.challenge_prefix(),
        });
        order::order(
            &account,
            &site.hosts,
            kind,
            &self.challenges,
            shared.as_ref(),
        )
        .await
    }

    /// How long until the installed certificate is due, `None` when there is
    /// none for these hosts or it is due now. With shared storage the wait is
    /// capped so that another node's renewal is picked up.
    fn time_to_renewal(&self, site: &AcmeSite) -> Option<Duration> {
        let current = self
            .installed(&site.name)
            .filter(|c| c.is_for(&site.hosts))?;
        let wait = current
            .renewal_time()
            .duration_since(SystemTime::now())
            .ok()?;
        if wait.is_zero() {
            return None;
        }
        Some(if self.storage.is_shared() {
            wait.min(self.options.shared_poll)
        } else {
            wait
        })
    }

    /// Puts the stored certificate in service when it names any of the site's
    /// hosts and is newer than the one in service: after a host was added
    /// (and before its order succeeds, which may take until its DNS points
    /// here) a restart serves the names it covers, as the running node did,
    /// rather than none; the order for all of them follows at once, since a
    /// certificate not for every host is due. An expired one is put in service too
    /// when it is all there is, as it was before the restart: the handshake
    /// fails either way, and its expiry stays on `/metrics` (negative) so the
    /// expiry alert keeps firing; it is due, so an order follows at once.
    async fn adopt_stored(&self, site: &AcmeSite) -> Result<(), AcmeError> {
        let Some(bytes) = self.storage.load(&self.certificate_key(&site.name)).await? else {
            return Ok(());
        };
        let stored: StoredCertificate = match serde_json::from_slice(&bytes) {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(
                    site = site.name,
                    "ACME: ignoring an unreadable stored certificate: {e}"
                );
                return Ok(());
            }
        };
        let certificate = match SiteCertificate::from_stored(stored) {
            Ok(certificate) => certificate,
            Err(e) => {
                tracing::warn!(
                    site = site.name,
                    "ACME: ignoring an unusable stored certificate: {e}"
                );
                return Ok(());
            }
        };
        if !certificate.shares_a_host(&site.hosts) {
            return Ok(());
        }
        if !certificate.is_for(&site.hosts) {
            tracing::info!(
                site = site.name,
                covers = certificate.hosts.join(","),
                hosts = site.hosts.join(","),
                "ACME: the stored certificate names some of the site's hosts; it serves those until one for all of them is obtained"
            );
        }
        let newer = self.installed(&site.name).is_none_or(|current| {
            current.serial != certificate.serial && certificate.not_after > current.not_after
        });
        if newer {
            if certificate.is_valid_at(SystemTime::now()) {
                tracing::info!(
                    site = site.name,
                    serial = certificate.serial,
                    expires = %crate::http::date::format(certificate.not_after),
                    "ACME: stored certificate in service"
                );
            } else {
                tracing::warn!(
                    site = site.name,
                    serial = certificate.serial,
                    expired = %crate::http::date::format(certificate.not_after),
                    "ACME: the stored certificate has expired; it is all there is until a new one is obtained"
                );
            }
            self.install(&site.name, certificate);
        }
        Ok(())
    }

    /// The account, loaded or registered on first use.
    async fn account(&self) -> Result<instant_acme::Account, AcmeError> {
        let mut account = self.account.lock().await;
        if let Some(account) = account.as_ref() {
            return Ok(account.clone());
        }
        let loaded = account::load_or_create(
            &self.storage,
            &format!("{}account.json", self.ca),
            &self.options.directory,
            self.options.email.as_deref(),
            self.options.ca_root.as_deref(),
        )
        .await?;
        *account = Some(loaded.clone());
        Ok(loaded)
    }

    /// Drops the stored account after the CA said it does not know it.
    async fn forget_account(&self) {
        *self.account.lock().await = None;
        let key = format!("{}account.json", self.ca);
        if let Err(e) = self.storage.delete(&key).await {
            tracing::warn!("ACME: cannot remove the stale account: {e}");
        }
    }
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("directory", &self.options.directory)
            .field("storage", &self.storage.describe())
            .field("certificates", &self.expiries())
            .finish()
    }
}

/// The failed orders of a site's hosts, recorded in shared storage
/// (`<ca>/failures/<site>.json`) by the node that made the last one, and
/// removed by the order that succeeds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct FailedOrders {
    hosts: Vec<String>,
    failures: u32,
    /// When the next attempt is due, in milliseconds since the epoch.
    retry_at_ms: u64,
}

impl FailedOrders {
    /// How long until the next attempt, `None` when it is due.
    fn wait(&self) -> Option<Duration> {
        let now = unix_millis(SystemTime::now());
        (self.retry_at_ms > now).then(|| Duration::from_millis(self.retry_at_ms - now))
    }
}

fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What instant-acme does with `Retry-After: 9223372036854775807`.
    #[tokio::test]
    async fn a_panic_in_an_attempt_is_a_failed_attempt() {
        let huge = Duration::from_secs(i64::MAX as u64);
        let panicking = async move {
            let _ = SystemTime::now() + huge;
            Ok::<(), AcmeError>(())
        };
        match unwound(panicking).await {
            Err(AcmeError::Panicked(what)) => assert!(what.contains("overflow"), "{what}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            unwound(async { Ok::<u8, AcmeError>(7) }).await,
            Ok(7)
        ));
        assert!(matches!(
            unwound(async { Err::<(), _>(AcmeError::Ca("no".into())) }).await,
            Err(AcmeError::Ca(_))
        ));
    }

    #[test]
    fn a_ca_directory_becomes_one_safe_key_segment() {
        assert_eq!(
            ca_segment("https://acme-v02.api.letsencrypt.org/directory"),
            "acme-v02.api.letsencrypt.org-directory"
        );
        assert_eq!(
            ca_segment("https://127.0.0.1:14000/dir"),
            "127.0.0.1-14000-dir"
        );
    }
}
