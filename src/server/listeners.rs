//! The listeners: plain HTTP (`--listen`), HTTPS (`--tls-listen`, certificates
//! by SNI) and the admin API (`--admin-listen`).

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};

use super::{NodeOptions, StartError};
use crate::handler::{handle, wire};
use crate::state::AppState;
use crate::tls;

/// Idle keep-alive connections are closed after this long.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// A client must send its request head within this long (slowloris guard).
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The bound and running listeners.
pub(super) struct Listeners {
    pub http_addrs: Vec<SocketAddr>,
    pub https_addrs: Vec<SocketAddr>,
    pub admin_addr: SocketAddr,
    pub cluster_addr: Option<SocketAddr>,
    /// The edge server (plain and TLS listeners), the admin server, then the
    /// cluster listener's.
    pub servers: Vec<Server>,
}

impl Listeners {
    /// Binds every listener and starts serving; prints one line per listener.
    pub fn bind(
        options: &NodeOptions,
        state: &web::Data<AppState>,
    ) -> Result<Listeners, StartError> {
        let edge_state = state.clone();
        let resolver = state.tls_resolver.clone();
        let refused = crate::handler::refused_hook(state.clone());
        // The TLS listeners bound to one address, once bound: a connection
        // to one without SNI was given the certificate of that address's
        // site (`tls::listener_address`), and is recorded as such.
        let tls_bound: Arc<std::sync::OnceLock<Vec<SocketAddr>>> = Arc::default();
        let bound = tls_bound.clone();
        let mut edge = HttpServer::new(move || {
            App::new()
                .app_data(edge_state.clone())
                .default_service(web::to(handle))
        })
        // Each TLS connection carries the name its client asked for (SNI), for
        // the misdirected-request check (RFC 9110 15.5.20); each plain one,
        // whether its congestion control paces it (how bodies are sent).
        .on_connect(move |connection, extensions| {
            tls::session::on_connect(&resolver, connection, extensions, bound.get());
            wire::on_connect(connection, extensions);
            extensions.insert(refused.clone());
        })
        .workers(options.workers.max(1))
        // HTTP/2 writes a response's HEADERS and DATA frames separately: with
        // Nagle's algorithm the second waited for the client's delayed ACK,
        // ~40 ms per response (docs/PERFORMANCE.md, HTTP/2).
        .tcp_nodelay(true)
        .keep_alive(KEEP_ALIVE)
        .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
        .shutdown_timeout(options.shutdown_timeout.as_secs())
        .disable_signals();
        let mut http_addrs = Vec::new();
        for addr in &options.listen {
            let (listener, local) = bind(*addr)?;
            set_congestion(&listener, options.tcp_congestion.as_deref())?;
            edge = edge
                .listen(listener)
                .map_err(|error| StartError::Listen { addr: local, error })?;
            tracing::info!("listening on http://{local}");
            http_addrs.push(local);
        }
        let mut https_addrs = Vec::new();
        for addr in &options.tls_listen {
            let (listener, local) = bind(*addr)?;
            set_congestion(&listener, options.tcp_congestion.as_deref())?;
            let tls_config = tls::server_config(state.tls_resolver.clone(), local)
                .map_err(|e| StartError::Tls(format!("TLS configuration: {e}")))?;
            edge = edge
                .listen_rustls_0_23(listener, tls_config)
                .map_err(|error| StartError::Listen { addr: local, error })?;
            tracing::info!("listening on https://{local}");
            https_addrs.push(local);
        }
        let _ = tls_bound.set(
            https_addrs
                .iter()
                .copied()
                .filter(|addr| tls::listener_address(*addr).is_some())
                .collect(),
        );
        if !https_addrs.is_empty() && state.tls_resolver.current().tls_sites() == 0 {
            tracing::warn!(
                "--tls-listen is set but no site has a [tls] section: every handshake will fail"
            );
        }
        if let Some(first) = https_addrs.first() {
            state.https_port.store(first.port(), Ordering::Relaxed);
        }
        // Bound before the admin listener, whose line tells that the node is up.
        let cluster_listen = options.cluster.as_ref().and_then(|c| c.listen);
        let mut cluster_addr = None;
        let mut cluster_server = None;
        if let Some(addr) = cluster_listen {
            let (listener, local) = bind(addr)?;
            let cluster_state = state.clone();
            let cluster = HttpServer::new(move || {
                App::new()
                    .app_data(cluster_state.clone())
                    .configure(crate::cluster::listener::configure)
            })
            .workers(options.workers.max(1))
            .tcp_nodelay(true)
            .keep_alive(KEEP_ALIVE)
            .shutdown_timeout(options.shutdown_timeout.as_secs())
            .disable_signals()
            .listen(listener)
            .map_err(|error| StartError::Listen { addr: local, error })?;
            tracing::info!("cluster listening on http://{local}");
            cluster_server = Some(cluster.run());
            cluster_addr = Some(local);
        }
        let admin_state = state.clone();
        let (listener, admin_addr) = bind(options.admin_listen)?;
        let admin = HttpServer::new(move || {
            App::new()
                .app_data(admin_state.clone())
                .configure(crate::admin::configure)
        })
        .workers(1)
        .shutdown_timeout(options.shutdown_timeout.as_secs())
        .disable_signals()
        .listen(listener)
        .map_err(|error| StartError::Listen {
            addr: admin_addr,
            error,
        })?;
        tracing::info!("admin listening on http://{admin_addr}");
        let mut servers = vec![edge.run(), admin.run()];
        servers.extend(cluster_server);
        Ok(Listeners {
            http_addrs,
            https_addrs,
            admin_addr,
            cluster_addr,
            servers,
        })
    }
}

/// Binds a listener and reads back its address (port 0 becomes the real one).
fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let error = |error| StartError::Listen { addr, error };
    let listener = TcpListener::bind(addr).map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    Ok((listener, local))
}

/// Sets `listener`'s TCP congestion control to `name` (`None`: the host's
/// stays); the connections it accepts inherit it (Linux).
fn set_congestion(listener: &TcpListener, name: Option<&str>) -> Result<(), StartError> {
    let Some(name) = name else {
        return Ok(());
    };
    rustix::net::sockopt::set_tcp_congestion(listener, name).map_err(|e| {
        let reason = match e {
            rustix::io::Errno::NOENT => "no congestion control of that name is loaded".to_string(),
            rustix::io::Errno::PERM => {
                "not allowed without CAP_NET_ADMIN (net.ipv4.tcp_allowed_congestion_control)"
                    .to_string()
            }
            other => std::io::Error::from(other).to_string(),
        };
        let allowed = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_allowed_congestion_control")
            .map_or_else(|_| "unknown".into(), |list| list.trim().to_string());
        StartError::TcpCongestion {
            name: name.to_string(),
            reason,
            allowed,
        }
    })
}
