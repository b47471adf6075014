//! The process signals of `s3edge serve`: SIGTERM and SIGINT drain in-flight
//! requests then stop; SIGHUP reloads the site files and certificates (a
//! broken set keeps the one in force and logs why) and reopens the access
//! log file; SIGUSR1 reopens the access log file only (log rotation, as
//! nginx's `-s reopen`; by default the signal would end the process).

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::{reload, stop, Node, StartError};
use crate::state::AppState;

/// How long a shutdown waits for the ACME storage to release the order locks
/// (a bucket that does not answer must not hold the node up).
const ACME_RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// The signals `serve` handles, taken over from their default actions
/// (SIGHUP and SIGUSR1 would end the process) before the node starts, so that
/// a `systemctl reload` or a log rotation during a slow start (a bucket that
/// is slow to answer, a large disk tier to index) does not kill it.
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
    user1: Signal,
    /// A SIGHUP or SIGUSR1 came while the node was starting: acted on once
    /// it has started (what the start read may be older than the change).
    reload_after_start: bool,
    reopen_after_start: bool,
}

impl Signals {
    /// Takes the signals over; within a Tokio runtime.
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
            user1: signal(SignalKind::user_defined1())?,
            reload_after_start: false,
            reopen_after_start: false,
        })
    }

    /// Runs `start` (the node's start-up); `None` when a SIGTERM or SIGINT
    /// came first: the start is abandoned and the process may exit. A SIGHUP
    /// or SIGUSR1 meanwhile is remembered for after the start.
    pub async fn starting(
        &mut self,
        start: impl std::future::Future<Output = Result<Node, StartError>>,
    ) -> Option<Result<Node, StartError>> {
        let mut start = std::pin::pin!(start);
        loop {
            tokio::select! {
                started = &mut start => return Some(started),
                _ = self.terminate.recv() => {
                    tracing::info!("SIGTERM while starting: stopping");
                    return None;
                }
                _ = self.interrupt.recv() => {
                    tracing::info!("SIGINT while starting: stopping");
                    return None;
                }
                _ = self.hangup.recv() => {
                    tracing::info!("SIGHUP while starting: the site files are read again once started");
                    self.reload_after_start = true;
                }
                _ = self.user1.recv() => self.reopen_after_start = true,
            }
        }
    }
}

/// Serves `node` until it stops by itself or a SIGTERM or SIGINT has drained
/// it. A SIGHUP's reload runs on a task of its own, one at a time (SIGHUPs
/// during a reload make one more after it), so that a SIGTERM is acted on at
/// once even while a reload waits on a slow bucket or purges a large site.
/// How long the exit waits for the access log's last lines.
const ACCESS_LOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn serve_until_signalled(node: Node, mut signals: Signals) -> std::io::Result<()> {
    let handles = node.handles();
    let state = node.state.clone();
    let mut run = Box::pin(node.run());
    let reloads = Arc::new(tokio::sync::Notify::new());
    let reloader = actix_web::rt::spawn(reload_on_notice(state.clone(), reloads.clone()));
    if signals.reopen_after_start {
        state.access_log.reopen();
    }
    if signals.reload_after_start {
        reloads.notify_one();
    }
    loop {
        tokio::select! {
            result = &mut run => {
                reloader.abort();
                return result;
            }
            _ = signals.terminate.recv() => { tracing::info!("SIGTERM: draining in-flight requests"); break; }
            _ = signals.interrupt.recv() => { tracing::info!("SIGINT: draining in-flight requests"); break; }
            _ = signals.user1.recv() => {
                state.access_log.reopen();
                tracing::info!("SIGUSR1: access log reopened");
            }
            _ = signals.hangup.recv() => {
                state.access_log.reopen();
                reloads.notify_one();
            }
        }
    }
    // A reload under way is abandoned: what it would change is read again at
    // the next start (a site whose origin changed loses its disk entries then,
    // `Cache::reconcile_origins`).
    reloader.abort();
    // The servers' futures drive their own shutdown: keep polling them while
    // the stop command is delivered. Meanwhile the ACME tasks stop and release
    // their order locks, which the runtime would otherwise leave behind.
    let release = tokio::time::timeout(ACME_RELEASE_TIMEOUT, state.acme.shutdown());
    let (_, result, released) = tokio::join!(stop(&handles, true), &mut run, release);
    if released.is_err() {
        tracing::warn!(
            "ACME: the order locks were not all released within {ACME_RELEASE_TIMEOUT:?}; \
             a lock left behind expires by itself"
        );
    }
    result?;
    if !state.access_log.flush(ACCESS_LOG_FLUSH_TIMEOUT) {
        tracing::warn!(
            "access log: its last lines were not written within {ACCESS_LOG_FLUSH_TIMEOUT:?}"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// Reloads once per notice, one reload at a time.
async fn reload_on_notice(state: web::Data<AppState>, notices: Arc<tokio::sync::Notify>) {
    loop {
        notices.notified().await;
        match reload(&state).await {
            Ok(count) => tracing::info!(sites = count, "SIGHUP: site files reloaded"),
            Err(error) => {
                for problem in error.problems() {
                    tracing::error!("{problem}");
                }
                tracing::error!("SIGHUP: the site files are invalid; keeping the sites in force");
            }
        }
    }
}
