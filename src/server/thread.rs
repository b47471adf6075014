//! A node on its own thread with its own actix system (tests, embedding).

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::web;

use super::{stop, Node, NodeOptions, StartError};
use crate::state::AppState;

/// A node running on its own thread with its own actix system (tests, embedding).
pub struct NodeThread {
    pub http_addrs: Vec<SocketAddr>,
    pub https_addrs: Vec<SocketAddr>,
    pub admin_addr: SocketAddr,
    /// The embedded S3 store's address, when it runs.
    pub embedded_addr: Option<SocketAddr>,
    pub state: web::Data<AppState>,
    handles: Vec<ServerHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NodeThread {
    /// Starts a node on a new thread and waits until it listens.
    pub fn spawn(options: NodeOptions) -> Result<NodeThread, StartError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                match Node::start(options).await {
                    Ok(node) => {
                        let info = (
                            (node.http_addrs.clone(), node.https_addrs.clone()),
                            node.admin_addr,
                            node.embedded_addr(),
                            node.state.clone(),
                            node.handles(),
                        );
                        let _ = tx.send(Ok(info));
                        let _ = node.run().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
        });
        match rx.recv() {
            Ok(Ok(((http_addrs, https_addrs), admin_addr, embedded_addr, state, handles))) => {
                Ok(NodeThread {
                    http_addrs,
                    https_addrs,
                    admin_addr,
                    embedded_addr,
                    state,
                    handles,
                    thread: Some(thread),
                })
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(StartError::Listen {
                    addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                    error: std::io::Error::other("the node thread ended before it started"),
                })
            }
        }
    }

    /// The first HTTP listener as a base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.http_addrs[0])
    }

    /// Stops the node and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            let handles = self.handles.clone();
            let stopper = std::thread::spawn(move || {
                actix_rt::System::new().block_on(stop(&handles, false));
            });
            let _ = stopper.join();
            let _ = thread.join();
        }
    }
}

impl Drop for NodeThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}
