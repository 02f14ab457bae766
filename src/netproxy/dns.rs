//! The container's embedded DNS server (Docker's 127.0.0.11): answers A, AAAA and
//! PTR questions about the names of its networks from the names file, an empty
//! answer for other types of a known name, and forwards everything else to the
//! upstream servers (from the proxy's host namespace, so the host's own loopback
//! resolvers work too). When no upstream answers, the reply is SERVFAIL.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use simple_dns::rdata::{A, AAAA, PTR, RData};
use simple_dns::{CLASS, Name, OPCODE, Packet, PacketFlag, QTYPE, RCODE, ResourceRecord, TYPE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::names::{Lookup, Names, parse_reverse};

/// Docker's TTL for its own names.
const TTL: u32 = 600;
/// How long one upstream server may take.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(4);
/// Upstream servers tried per query.
const MAX_UPSTREAMS: usize = 3;

/// Identity of the names file as last read: (inode, size, mtime in ns).
type Stamp = (u64, u64, i64);

/// Answers one container's queries.
pub struct Resolver {
    container: String,
    names_file: PathBuf,
    upstream: Vec<SocketAddr>,
    cache: Mutex<(Option<Stamp>, Arc<Names>)>,
}

impl Resolver {
    pub fn new(container: String, names_file: PathBuf, upstream: Vec<SocketAddr>) -> Resolver {
        Resolver {
            container,
            names_file,
            upstream,
            cache: Mutex::new((None, Arc::new(Names::default()))),
        }
    }

    /// The names, re-read when the file changed (the daemon replaces it atomically).
    fn names(&self) -> Arc<Names> {
        let stamp = std::fs::metadata(&self.names_file).ok().map(|m| {
            (
                m.ino(),
                m.size(),
                m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            )
        });
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if stamp.is_some()
            && cache.0 != stamp
            && let Ok(bytes) = std::fs::read(&self.names_file)
            && let Ok(names) = serde_json::from_slice::<Names>(&bytes)
        {
            *cache = (stamp, Arc::new(names));
        }
        cache.1.clone()
    }

    /// The reply to one query message, or `None` for something that is not a query.
    pub async fn answer(&self, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let packet = match Packet::parse(query) {
            Ok(p) => p,
            Err(_) => {
                return (query.len() >= 12).then(|| error_reply(query, RCODE::FormatError));
            }
        };
        if packet.has_flags(PacketFlag::RESPONSE) {
            return None;
        }
        if packet.opcode() == OPCODE::StandardQuery && packet.questions.len() == 1 {
            let names = self.names();
            if let Some(reply) = self.local(&names, &packet) {
                return Some(reply);
            }
            if !names.may_forward(&self.container) {
                return Some(error_reply(query, RCODE::ServerFailure));
            }
        }
        Some(match self.forward(query, tcp).await {
            Some(r) => r,
            None => error_reply(query, RCODE::ServerFailure),
        })
    }

    /// A reply from the names file, when the question is about one of its names.
    fn local(&self, names: &Names, packet: &Packet<'_>) -> Option<Vec<u8>> {
        let q = packet.questions.first()?;
        let qname = q.qname.to_string();
        let mut reply = Packet::new_reply(packet.id());
        reply.set_flags(PacketFlag::RECURSION_AVAILABLE);
        if packet.has_flags(PacketFlag::RECURSION_DESIRED) {
            reply.set_flags(PacketFlag::RECURSION_DESIRED);
        }
        reply.questions.push(q.clone());
        match q.qtype {
            QTYPE::TYPE(TYPE::A) | QTYPE::TYPE(TYPE::AAAA) => {
                let v6 = q.qtype == QTYPE::TYPE(TYPE::AAAA);
                let Lookup::Found(ips) = names.lookup(&self.container, &qname, v6) else {
                    return None;
                };
                for ip in ips {
                    let rdata = match ip {
                        IpAddr::V4(v) => RData::A(A {
                            address: u32::from(v),
                        }),
                        IpAddr::V6(v) => RData::AAAA(AAAA {
                            address: u128::from(v),
                        }),
                    };
                    reply
                        .answers
                        .push(ResourceRecord::new(q.qname.clone(), CLASS::IN, TTL, rdata));
                }
            }
            QTYPE::TYPE(TYPE::PTR) => {
                let ip = parse_reverse(&qname)?;
                let target = names.reverse(&self.container, ip)?;
                let name = Name::new(&target).ok()?;
                reply.answers.push(ResourceRecord::new(
                    q.qname.clone(),
                    CLASS::IN,
                    TTL,
                    RData::PTR(PTR(name)),
                ));
                return reply.build_bytes_vec_compressed().ok();
            }
            _ => {
                // Other types of a name of ours: an empty answer.
                if names.lookup(&self.container, &qname, false) == Lookup::Unknown {
                    return None;
                }
            }
        }
        reply.build_bytes_vec_compressed().ok()
    }

    /// The first good answer of the upstream servers.
    async fn forward(&self, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let mut last = None;
        for server in self.upstream.iter().take(MAX_UPSTREAMS) {
            let attempt = if tcp {
                tokio::time::timeout(UPSTREAM_TIMEOUT, forward_tcp(*server, query)).await
            } else {
                tokio::time::timeout(UPSTREAM_TIMEOUT, forward_udp(*server, query)).await
            };
            let Ok(Ok(reply)) = attempt else {
                continue;
            };
            let rcode = reply.get(3).map(|b| b & 0x0f).unwrap_or(2);
            // SERVFAIL or REFUSED: the next server may do better.
            if rcode == 2 || rcode == 5 {
                last = Some(reply);
                continue;
            }
            return Some(reply);
        }
        last
    }
}

async fn forward_udp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().unwrap_or(server)
    } else {
        "[::]:0".parse().unwrap_or(server)
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(server).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await?;
        // Only the answer to this query (same ID).
        if n >= 2 && buf[..2] == query[..2.min(query.len())] {
            return Ok(buf[..n].to_vec());
        }
    }
}

async fn forward_tcp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(server).await?;
    let mut msg = Vec::with_capacity(query.len() + 2);
    msg.extend_from_slice(&(query.len() as u16).to_be_bytes());
    msg.extend_from_slice(query);
    s.write_all(&msg).await?;
    let len = s.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

/// A reply with only the query's header (ID, opcode, RD) and `rcode`.
fn error_reply(query: &[u8], rcode: RCODE) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    out[..2].copy_from_slice(&query[..2.min(query.len())]);
    let flags = query.get(2).copied().unwrap_or(0);
    // QR set, opcode and RD kept.
    out[2] = 0x80 | (flags & 0x79);
    out[3] = 0x80 | (rcode as u8 & 0x0f);
    // Echo the question when it parses, as resolvers expect.
    if let Ok(p) = Packet::parse(query)
        && let Some(q) = p.questions.first()
    {
        let mut r = Packet::new_reply(p.id());
        r.questions.push(q.clone());
        *r.rcode_mut() = rcode;
        if p.has_flags(PacketFlag::RECURSION_DESIRED) {
            r.set_flags(PacketFlag::RECURSION_DESIRED);
        }
        r.set_flags(PacketFlag::RECURSION_AVAILABLE);
        if let Ok(bytes) = r.build_bytes_vec() {
            return bytes;
        }
    }
    out
}

/// Serves queries over UDP until the process ends.
pub async fn serve_udp(sock: UdpSocket, resolver: Arc<Resolver>) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let query = buf[..n].to_vec();
        let (sock, resolver) = (sock.clone(), resolver.clone());
        tokio::spawn(async move {
            if let Some(mut reply) = resolver.answer(&query, false).await {
                if reply.len() > 512 && !has_edns(&query) {
                    reply = truncated(&query);
                }
                let _ = sock.send_to(&reply, peer).await;
            }
        });
    }
}

/// Serves queries over TCP (two-byte length before each message).
pub async fn serve_tcp(listener: TcpListener, resolver: Arc<Resolver>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let resolver = resolver.clone();
        tokio::spawn(async move {
            loop {
                let Ok(Ok(len)) =
                    tokio::time::timeout(Duration::from_secs(10), conn.read_u16()).await
                else {
                    return;
                };
                let mut query = vec![0u8; len as usize];
                if conn.read_exact(&mut query).await.is_err() {
                    return;
                }
                let Some(reply) = resolver.answer(&query, true).await else {
                    return;
                };
                let mut msg = Vec::with_capacity(reply.len() + 2);
                msg.extend_from_slice(&(reply.len() as u16).to_be_bytes());
                msg.extend_from_slice(&reply);
                if conn.write_all(&msg).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn has_edns(query: &[u8]) -> bool {
    Packet::parse(query).is_ok_and(|p| p.opt().is_some())
}

/// The header and question with TC set: the client retries over TCP.
fn truncated(query: &[u8]) -> Vec<u8> {
    let mut r = error_reply(query, RCODE::NoError);
    if r.len() > 2 {
        r[2] |= 0x02;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netproxy::names::{ContainerNames, NameEntry, NetworkNames};

    fn query(name: &str, qtype: TYPE) -> Vec<u8> {
        let mut p = Packet::new_query(0x1234);
        p.set_flags(PacketFlag::RECURSION_DESIRED);
        p.questions.push(simple_dns::Question::new(
            Name::new_unchecked(name),
            QTYPE::TYPE(qtype),
            simple_dns::QCLASS::CLASS(CLASS::IN),
            false,
        ));
        p.build_bytes_vec().unwrap()
    }

    fn resolver(dir: &std::path::Path, upstream: Vec<SocketAddr>) -> Resolver {
        let mut names = Names::default();
        names.networks.insert(
            "n".into(),
            NetworkNames {
                name: "front".into(),
                internal: false,
                endpoints: vec![NameEntry {
                    container: "other".into(),
                    names: vec!["web".into()],
                    ipv4: Some("172.18.0.2".parse().unwrap()),
                    ipv6: None,
                }],
            },
        );
        names.containers.insert(
            "me".into(),
            ContainerNames {
                networks: vec!["n".into()],
                links: Default::default(),
            },
        );
        let file = dir.join("names.json");
        std::fs::write(&file, serde_json::to_vec(&names).unwrap()).unwrap();
        Resolver::new("me".into(), file, upstream)
    }

    #[tokio::test]
    async fn local_names_are_answered() {
        let dir = tempfile::tempdir().unwrap();
        let r = resolver(dir.path(), vec![]);
        let reply = r.answer(&query("web", TYPE::A), false).await.unwrap();
        let p = Packet::parse(&reply).unwrap();
        assert_eq!(p.id(), 0x1234);
        assert_eq!(p.rcode(), RCODE::NoError);
        assert_eq!(p.answers.len(), 1);
        assert!(
            matches!(p.answers[0].rdata, RData::A(A { address }) if address == u32::from(std::net::Ipv4Addr::new(172, 18, 0, 2)))
        );
        let reply = r.answer(&query("web", TYPE::AAAA), false).await.unwrap();
        let p = Packet::parse(&reply).unwrap();
        assert_eq!((p.rcode(), p.answers.len()), (RCODE::NoError, 0));
        let reply = r
            .answer(&query("2.0.18.172.in-addr.arpa", TYPE::PTR), false)
            .await
            .unwrap();
        let p = Packet::parse(&reply).unwrap();
        assert!(matches!(&p.answers[0].rdata, RData::PTR(PTR(n)) if n.to_string() == "web.front"));
        // Unknown, with no upstream: SERVFAIL.
        let reply = r
            .answer(&query("example.org", TYPE::A), false)
            .await
            .unwrap();
        assert_eq!(Packet::parse(&reply).unwrap().rcode(), RCODE::ServerFailure);
    }

    #[tokio::test]
    async fn other_names_go_upstream() {
        let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            let (n, peer) = upstream.recv_from(&mut buf).await.unwrap();
            let q = Packet::parse(&buf[..n]).unwrap();
            let mut reply = Packet::new_reply(q.id());
            reply.questions.push(q.questions[0].clone());
            reply.answers.push(ResourceRecord::new(
                q.questions[0].qname.clone(),
                CLASS::IN,
                60,
                RData::A(A {
                    address: 0x0a000001,
                }),
            ));
            upstream
                .send_to(&reply.build_bytes_vec().unwrap(), peer)
                .await
                .unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let r = resolver(dir.path(), vec![addr]);
        let reply = r
            .answer(&query("example.org", TYPE::A), false)
            .await
            .unwrap();
        let p = Packet::parse(&reply).unwrap();
        assert_eq!(p.answers.len(), 1);
        assert_eq!(p.answers[0].ttl, 60);
    }
}
