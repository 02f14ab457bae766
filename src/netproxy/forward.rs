//! The userland proxy for published ports: connections and datagrams that reach the
//! host port itself (loopback traffic, which the kernel's DNAT in `PREROUTING` does
//! not see; or everything, with `iptables: false`) are relayed to the container.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// A UDP flow with no traffic for this long is forgotten (docker-proxy's 90 s).
const UDP_IDLE: Duration = Duration::from_secs(90);

/// Relays every connection accepted on `listener` to `target`.
pub async fn tcp(listener: TcpListener, target: SocketAddr) {
    loop {
        let (mut inbound, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => {
                // Out of descriptors, most likely: let some connections finish.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
    }
}

struct Flow {
    socket: Arc<UdpSocket>,
    last: Instant,
}

/// Relays datagrams on `sock` to `target`, one flow (and one socket towards the
/// container) per client address, so each client gets the container's answers.
pub async fn udp(sock: UdpSocket, target: SocketAddr) {
    let sock = Arc::new(sock);
    let flows: Arc<Mutex<HashMap<SocketAddr, Flow>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, client)) = sock.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let existing = {
            let mut map = flows.lock().unwrap_or_else(|p| p.into_inner());
            map.get_mut(&client).map(|f| {
                f.last = Instant::now();
                f.socket.clone()
            })
        };
        let out = match existing {
            Some(s) => s,
            None => {
                let local: SocketAddr = if target.is_ipv4() {
                    SocketAddr::from(([0, 0, 0, 0], 0))
                } else {
                    SocketAddr::from(([0u16; 8], 0))
                };
                let Ok(s) = UdpSocket::bind(local).await else {
                    continue;
                };
                if s.connect(target).await.is_err() {
                    continue;
                }
                let s = Arc::new(s);
                flows.lock().unwrap_or_else(|p| p.into_inner()).insert(
                    client,
                    Flow {
                        socket: s.clone(),
                        last: Instant::now(),
                    },
                );
                tokio::spawn(replies(s.clone(), sock.clone(), client, flows.clone()));
                s
            }
        };
        let _ = out.send(&buf[..n]).await;
    }
}

/// Sends the container's answers on one flow back to its client, until the flow
/// has been idle for [`UDP_IDLE`].
async fn replies(
    from: Arc<UdpSocket>,
    to: Arc<UdpSocket>,
    client: SocketAddr,
    flows: Arc<Mutex<HashMap<SocketAddr, Flow>>>,
) {
    let mut buf = vec![0u8; 65535];
    loop {
        match tokio::time::timeout(UDP_IDLE, from.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                if let Some(f) = flows
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(&client)
                {
                    f.last = Instant::now();
                }
                let _ = to.send_to(&buf[..n], client).await;
            }
            Ok(Err(_)) => {}
            Err(_) => {
                let mut map = flows.lock().unwrap_or_else(|p| p.into_inner());
                let idle = map
                    .get(&client)
                    .is_none_or(|f| f.last.elapsed() >= UDP_IDLE);
                if idle {
                    map.remove(&client);
                    return;
                }
            }
        }
    }
}
