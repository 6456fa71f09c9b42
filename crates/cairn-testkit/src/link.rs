//! A network link that can be cut: a TCP relay between a node and the
//! address it dials. Cut, it behaves as a pulled cable does — bytes stop in
//! both directions without a FIN or RST, and new connections are taken but
//! never answered — until it is restored and everything held flows again.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A cuttable link to one address; dial `addr()` instead of the target.
pub struct Link {
    addr: SocketAddr,
    up: Arc<watch::Sender<bool>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Link {
    /// A link, up, from a new local port to `target`.
    pub fn to(target: SocketAddr) -> Link {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let up = Arc::new(watch::channel(true).0);
        let state = up.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the link");
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addr_tx.send(listener.local_addr().expect("addr")).ok();
                tokio::select! {
                    () = accept_loop(listener, target, state) => {}
                    _ = stop_rx => {}
                }
            });
        });
        Link {
            addr: addr_rx.recv().expect("the link failed to start"),
            up,
            _stop: stop_tx,
        }
    }

    /// Where to dial.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Pulls the cable.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Plugs it back in.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, up: Arc<watch::Sender<bool>>) {
    while let Ok((client, _)) = listener.accept().await {
        let up = up.subscribe();
        tokio::spawn(async move {
            // A connection made while cut waits, unanswered, for the link.
            let mut waiting = up.clone();
            if waiting.wait_for(|u| *u).await.is_err() {
                return;
            }
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::join!(pump(cr, sw, up.clone()), pump(sr, cw, up));
        });
    }
}

/// Copies one direction, holding bytes while the link is cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut up: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Cut: nothing is read, so nothing is acknowledged past the
        // socket buffers, as with a dead link.
        if up.wait_for(|u| *u).await.is_err() {
            return;
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            // Cut while waiting: stop reading at once.
            _ = up.wait_for(|u| !*u) => continue,
        };
        // Bytes read just before a cut are held until it is restored.
        if up.wait_for(|u| *u).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // Passing the end on, as the peer closed its side.
    let _closed = to.shutdown().await;
}
