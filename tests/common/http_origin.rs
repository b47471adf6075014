//! A real HTTP/1.1 origin server on loopback (hyper) whose answers a test
//! scripts, recording every request it gets; and a raw TCP origin for
//! answers that break the protocol.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A request as the origin received it (its body counted, not kept).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the origin answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Waits this long before answering (a slow origin).
    pub delay: Option<std::time::Duration>,
}

impl Reply {
    pub fn ok(body: &str, headers: &[(&str, &str)]) -> Reply {
        Reply::with_status(200, body, headers)
    }

    pub fn with_status(status: u16, body: &str, headers: &[(&str, &str)]) -> Reply {
        Reply {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            delay: None,
        }
    }

    pub fn after(mut self, delay: std::time::Duration) -> Reply {
        self.delay = Some(delay);
        self
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// The scripted origin.
pub struct ScriptedOrigin {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    handler: Arc<Mutex<Handler>>,
}

impl ScriptedOrigin {
    /// Starts serving on the current tokio runtime.
    pub async fn start(
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> ScriptedOrigin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind origin");
        let addr = listener.local_addr().expect("origin address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Mutex<Handler>> = Arc::new(Mutex::new(Arc::new(handler)));
        let (recorded, scripted) = (requests.clone(), handler.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (recorded, scripted) = (recorded.clone(), scripted.clone());
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let (recorded, scripted) = (recorded.clone(), scripted.clone());
                            async move {
                                let (parts, mut body) = request.into_parts();
                                let mut body_len = 0u64;
                                while let Some(Ok(frame)) = body.frame().await {
                                    if let Some(data) = frame.data_ref() {
                                        body_len += data.len() as u64;
                                    }
                                }
                                let seen = Recorded {
                                    method: parts.method.to_string(),
                                    target: parts
                                        .uri
                                        .path_and_query()
                                        .map_or("/".into(), |p| p.as_str().to_string()),
                                    headers: parts
                                        .headers
                                        .iter()
                                        .map(|(n, v)| {
                                            // UTF-8 (obs-text) kept as sent.
                                            let value = String::from_utf8_lossy(v.as_bytes());
                                            (n.to_string(), value.into_owned())
                                        })
                                        .collect(),
                                    body_len,
                                };
                                let handler = scripted.lock().unwrap().clone();
                                let reply = handler(&seen);
                                recorded.lock().unwrap().push(seen);
                                if let Some(delay) = reply.delay {
                                    tokio::time::sleep(delay).await;
                                }
                                let mut response = hyper::Response::builder().status(reply.status);
                                for (name, value) in &reply.headers {
                                    response = response.header(name.as_str(), value.as_str());
                                }
                                Ok::<_, std::convert::Infallible>(
                                    response
                                        .body(Full::new(Bytes::from(reply.body)))
                                        .expect("reply"),
                                )
                            }
                        });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ScriptedOrigin {
            addr,
            requests,
            handler,
        }
    }

    /// Answers from now on with `handler`.
    pub fn script(&self, handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        *self.handler.lock().unwrap() = Arc::new(handler);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests for `target` (path and query) so far.
    pub fn count(&self, target: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.target == target)
            .count()
    }

    /// A site file with this origin.
    pub fn site_toml(&self, host: &str, extra: &str) -> String {
        format!(
            "hosts = [\"{host}\"]\n[origin]\nurl = \"http://{}\"\ntimeout = \"2s\"\n{extra}",
            self.addr
        )
    }
}

/// An origin that answers every connection by running `answer` on the raw
/// socket once the request's header section has arrived; counts connections.
pub async fn raw_origin<F, Fut>(answer: F) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind raw origin");
    let addr = listener.local_addr().expect("address");
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                answer(stream).await;
            });
        }
    });
    (addr, count)
}
