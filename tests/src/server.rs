//! What every test server here shares ([`fake_athena`](crate::fake_athena),
//! [`fake_connect`](crate::fake_connect), [`s3_proxy`](crate::s3_proxy),
//! [`siem_receiver`](crate::siem_receiver)): a free port on `127.0.0.1`, a thread of its own
//! running a tokio runtime of its own (so sync tests, async tests and tests that start the
//! `connect-audit` binary can all use the server), and a stop, on drop, that waits for that
//! thread to end.
//!
//! A server binds first ([`TestServer::bind`], so it can know its URL before it builds its
//! state), then serves: an axum router ([`Bound::serve_router`]), each connection by a handler
//! of its own ([`Bound::serve_connections`]), or anything else until [`Shutdown`] resolves
//! ([`Bound::serve`]).
//!
//! ```no_run
//! use connect_audit_tests::server::{Flavor, TestServer};
//!
//! let server = TestServer::bind("empty").serve_router(Flavor::CurrentThread, axum::Router::new());
//! println!("answering 404 at {}", server.url());
//! drop(server); // stops the server and joins its thread
//! ```

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The tokio runtime a server's thread runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// A current-thread runtime: everything on the server's own thread.
    CurrentThread,
    /// A multi-thread runtime with this many worker threads, for handlers that do real work
    /// (the fake Athena runs its queries on DataFusion).
    MultiThread(usize),
}

/// A running server. Dropping it resolves the [`Shutdown`] its serving future was given and
/// waits for its thread to end.
#[derive(Debug)]
pub struct TestServer {
    url: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Binds a free port on `127.0.0.1` for a server called `name`: the name of its thread,
    /// and what a failure to set it up says.
    pub fn bind(name: &str) -> Bound {
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .unwrap_or_else(|e| panic!("bind the {name} server to a free port: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("make the {name} listener non-blocking: {e}"));
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        Bound {
            name: name.to_owned(),
            listener,
            url,
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A bound port, not served yet ([`TestServer::bind`]).
#[derive(Debug)]
pub struct Bound {
    name: String,
    listener: std::net::TcpListener,
    url: String,
}

impl Bound {
    /// The base URL the server will have, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Starts the server: on its own thread, a runtime of `flavor` runs the future `serve`
    /// makes of the listener and a [`Shutdown`], until that future ends (which it must do once
    /// the `Shutdown` resolves).
    pub fn serve<F, Fut>(self, flavor: Flavor, serve: F) -> TestServer
    where
        F: FnOnce(TcpListener, Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let Self {
            name,
            listener,
            url,
        } = self;
        let (tx, rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let mut builder = match flavor {
                    Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
                    Flavor::MultiThread(workers) => {
                        let mut builder = tokio::runtime::Builder::new_multi_thread();
                        builder.worker_threads(workers);
                        builder
                    }
                };
                let runtime = builder
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("the {name} runtime: {e}"));
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener)
                        .unwrap_or_else(|e| panic!("the {name} tokio listener: {e}"));
                    serve(listener, Shutdown(rx)).await;
                });
            })
            .unwrap_or_else(|e| panic!("spawn the thread of the server at {url}: {e}"));
        TestServer {
            url,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Serves `router` until the [`TestServer`] is dropped (gracefully: requests in flight
    /// are answered).
    pub fn serve_router(self, flavor: Flavor, router: axum::Router) -> TestServer {
        let name = self.name.clone();
        self.serve(flavor, move |listener, shutdown| async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
                .unwrap_or_else(|e| panic!("the {name} server: {e}"));
        })
    }

    /// Accepts connections until the [`TestServer`] is dropped, each served on a task of its
    /// own by the future `handle` makes of it (a failed accept is skipped).
    pub fn serve_connections<H, Fut>(self, flavor: Flavor, handle: H) -> TestServer
    where
        H: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.serve(flavor, move |listener, mut shutdown| async move {
            loop {
                tokio::select! {
                    () = &mut shutdown => break,
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            tokio::spawn(handle(stream));
                        }
                    }
                }
            }
        })
    }
}

/// Resolves when the [`TestServer`] is dropped: the server stops then.
#[derive(Debug)]
pub struct Shutdown(oneshot::Receiver<()>);

impl Future for Shutdown {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A dropped sender stops the server too.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}
