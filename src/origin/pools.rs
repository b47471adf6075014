//! Connection pools kept per thread, for the hyper clients that ask an HTTP
//! origin or another node.
//!
//! hyper runs each pooled connection as a task on the runtime that opened it,
//! and every actix worker is a runtime of its own. With one pool for the
//! process, a request on one worker often went out on a connection only
//! another worker could drive: it waited whenever that worker was busy
//! (compressing a large body, a TLS handshake), and took two wake-ups across
//! threads when it was not. A pool per thread is nginx's model too
//! (`keepalive` connections per worker process). The S3 origin does the same
//! with aws-sdk-s3's client (`origin::s3::per_thread_pools`).

use std::time::Duration;

use hyper_util::client::legacy::connect::Connect;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use thread_local::ThreadLocal;

/// A hyper client per thread that asks, all with one connector and one idle
/// timeout, each with its own connection pool.
pub struct ThreadPools<C: Send, B: Send> {
    connector: C,
    idle: Duration,
    clients: ThreadLocal<Client<C, B>>,
}

impl<C, B> ThreadPools<C, B>
where
    C: Connect + Clone + Send + Sync + 'static,
    B: hyper::body::Body + Send,
    B::Data: Send,
{
    /// Pools that drop a connection idle for `idle`.
    pub fn new(connector: C, idle: Duration) -> ThreadPools<C, B> {
        ThreadPools {
            connector,
            idle,
            clients: ThreadLocal::new(),
        }
    }

    /// The calling thread's client, made on its first request.
    pub fn client(&self) -> &Client<C, B> {
        self.clients.get_or(|| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(self.idle)
                .build(self.connector.clone())
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Two worker threads, each running one current-thread runtime for its
    //! whole life (as actix-web's workers do), against a keep-alive origin
    //! that counts the requests each connection carries; shared by the
    //! clients that keep pools per thread.

    use std::future::Future;
    use std::io::{BufRead, BufReader, Write};
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::connect::HttpConnector;
    use tokio::sync::mpsc;

    use super::ThreadPools;

    /// A keep-alive HTTP/1.1 server on loopback answering every request with
    /// a 2-byte 200; the number of requests each connection carried.
    pub(crate) fn counting_origin() -> (SocketAddr, Arc<Mutex<Vec<usize>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(Mutex::new(Vec::new()));
        let record = served.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let record = record.clone();
                let slot = {
                    let mut served = record.lock().unwrap();
                    served.push(0);
                    served.len() - 1
                };
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    loop {
                        // The request head, up to its empty line (no body).
                        loop {
                            line.clear();
                            match reader.read_line(&mut line) {
                                Ok(0) | Err(_) => return,
                                Ok(_) if line == "\r\n" => break,
                                Ok(_) => {}
                            }
                        }
                        record.lock().unwrap()[slot] += 1;
                        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\
                                      Content-Type: text/plain\r\n\r\nok";
                        if stream.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, served)
    }

    /// What a worker does next.
    enum Turn {
        Ask,
        /// Hold the thread (as a worker compressing a large body does).
        Block(Duration),
    }

    /// Two worker threads taking turns at what they are told.
    pub(crate) struct Workers {
        turns: Vec<mpsc::UnboundedSender<Turn>>,
        done: mpsc::UnboundedReceiver<(usize, Duration)>,
        threads: Vec<std::thread::JoinHandle<()>>,
    }

    impl Workers {
        /// Workers whose every [`Turn::Ask`] runs `ask(worker)` to its end.
        pub(crate) fn start<F, Fut>(ask: F) -> Workers
        where
            F: Fn(usize) -> Fut + Clone + Send + 'static,
            Fut: Future<Output = ()>,
        {
            let (done_tx, done) = mpsc::unbounded_channel();
            let mut turns = Vec::new();
            let threads = (0..2)
                .map(|worker| {
                    let (turn_tx, mut turn) = mpsc::unbounded_channel();
                    turns.push(turn_tx);
                    let ask = ask.clone();
                    let done = done_tx.clone();
                    std::thread::spawn(move || {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .unwrap();
                        runtime.block_on(async move {
                            while let Some(next) = turn.recv().await {
                                let started = Instant::now();
                                match next {
                                    Turn::Ask => ask(worker).await,
                                    Turn::Block(time) => std::thread::sleep(time),
                                }
                                done.send((worker, started.elapsed())).unwrap();
                            }
                        });
                    })
                })
                .collect();
            Workers {
                turns,
                done,
                threads,
            }
        }

        /// Tells `worker` what to do, without waiting.
        fn tell(&self, worker: usize, turn: Turn) {
            self.turns[worker].send(turn).unwrap();
        }

        /// The next turn finished: by which worker, and how long it took.
        fn finished(&mut self) -> (usize, Duration) {
            self.done.blocking_recv().unwrap()
        }

        fn stop(self) {
            drop(self.turns);
            for thread in self.threads {
                thread.join().unwrap();
            }
        }
    }

    /// Each thread asks on connections of its own pool: two workers taking
    /// turns make two connections, each carrying its own thread's requests,
    /// where one shared pool carried all six on one connection, driven by
    /// whichever runtime opened it.
    pub(crate) fn each_worker_asks_on_its_own_connections(workers: fn(SocketAddr) -> Workers) {
        let (addr, served) = counting_origin();
        let mut workers = workers(addr);
        const ROUNDS: usize = 3;
        for _ in 0..ROUNDS {
            for worker in 0..2 {
                workers.tell(worker, Turn::Ask);
                assert_eq!(workers.finished().0, worker);
            }
        }
        workers.stop();
        let served = served.lock().unwrap().clone();
        assert_eq!(served, vec![ROUNDS, ROUNDS], "requests per connection");
    }

    /// A worker held up (compressing a large body, say) does not hold up
    /// another's requests: with one shared pool the second worker's request
    /// went out on the idle connection the first had opened, whose task only
    /// that held thread could run, and waited the whole hold.
    pub(crate) fn a_busy_worker_does_not_stall_another(workers: fn(SocketAddr) -> Workers) {
        let (addr, _served) = counting_origin();
        let mut workers = workers(addr);
        let hold = Duration::from_secs(3);
        workers.tell(0, Turn::Ask);
        assert_eq!(workers.finished().0, 0);
        workers.tell(0, Turn::Block(hold));
        // Worker 0's thread is held from here (a moment to make sure of it).
        std::thread::sleep(Duration::from_millis(100));
        workers.tell(1, Turn::Ask);
        let (worker, took) = workers.finished();
        assert_eq!(worker, 1, "worker 1's request finished first");
        assert!(took < hold / 2, "worker 1's request took {took:?}");
        assert_eq!(workers.finished().0, 0);
        workers.stop();
    }

    /// Workers that GET `/` at `addr` through one [`ThreadPools`].
    fn workers_asking(addr: SocketAddr) -> Workers {
        let pools = Arc::new(ThreadPools::<_, Empty<Bytes>>::new(
            HttpConnector::new(),
            Duration::from_secs(30),
        ));
        Workers::start(move |_worker| {
            let pools = pools.clone();
            async move {
                let request = http::Request::get(format!("http://{addr}/"))
                    .body(Empty::new())
                    .unwrap();
                let response = pools.client().request(request).await.unwrap();
                let body = response.into_body().collect().await.unwrap();
                assert_eq!(body.to_bytes(), "ok");
            }
        })
    }

    #[test]
    fn each_worker_thread_has_its_own_connections() {
        each_worker_asks_on_its_own_connections(workers_asking);
    }

    #[test]
    fn a_busy_worker_does_not_stall_another_workers_requests() {
        a_busy_worker_does_not_stall_another(workers_asking);
    }
}
