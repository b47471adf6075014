//! The process signals of `s3edge serve`: SIGTERM and SIGINT drain in-flight
//! requests then stop; SIGHUP reloads the site files and certificates (a
//! broken set keeps the one in force and logs why) and reopens the access
//! log file; SIGUSR1 reopens the access log file only (log rotation, as
//! nginx's `-s reopen`; by default the signal would end the process).

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use super::{reload, stop, Node};

/// How long a shutdown waits for the ACME storage to release the order locks
/// (a bucket that does not answer must not hold the node up).
const ACME_RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `node` until it stops by itself or a SIGTERM or SIGINT has drained it.
pub async fn serve_until_signalled(node: Node) -> std::io::Result<()> {
    let handles = node.handles();
    let state = node.state.clone();
    let mut run = Box::pin(node.run());
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut user1 = signal(SignalKind::user_defined1())?;
    loop {
        tokio::select! {
            result = &mut run => return result,
            _ = terminate.recv() => { tracing::info!("SIGTERM: draining in-flight requests"); break; }
            _ = interrupt.recv() => { tracing::info!("SIGINT: draining in-flight requests"); break; }
            _ = user1.recv() => {
                state.access_log.reopen();
                tracing::info!("SIGUSR1: access log reopened");
            }
            _ = hangup.recv() => {
                state.access_log.reopen();
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
    }
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
    tracing::info!("stopped");
    Ok(())
}
