//! Loopback addresses and ports chosen at random, and listening checks through `/proc/net`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A random u64 from the standard library's per-process keys.
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A distinct loopback /24 for one test: 127.X.Y.0 with random X (16..=250) and Y.
#[derive(Debug, Clone, Copy)]
pub struct LoopbackNet {
    x: u8,
    y: u8,
}

impl LoopbackNet {
    /// A random net; prints it (the test harness shows it with a failing test's output).
    #[allow(clippy::print_stdout)]
    pub fn random() -> Self {
        let r = random_u64();
        let net = Self {
            x: 16 + (r % 235) as u8,
            y: ((r >> 8) % 256) as u8,
        };
        println!("loopback net 127.{}.{}.0/24", net.x, net.y);
        net
    }

    /// The address 127.X.Y.`z` of this net.
    pub fn ip(&self, z: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.x, self.y, z))
    }
}

/// A port free on `ip` for both TCP and UDP at the time of the call.
pub fn free_port(ip: IpAddr) -> u16 {
    for _ in 0..50 {
        let Ok(l) = std::net::TcpListener::bind(SocketAddr::new(ip, 0)) else {
            continue;
        };
        let Ok(addr) = l.local_addr() else { continue };
        if std::net::UdpSocket::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free port on {ip}");
}

/// A port free for both TCP and UDP on every one of `ips` at the time of the call (several
/// receivers behind one DNS name share a port).
pub fn common_port(ips: &[IpAddr]) -> u16 {
    for _ in 0..50 {
        let p = free_port(ips[0]);
        if ips[1..].iter().all(|ip| {
            std::net::TcpListener::bind(SocketAddr::new(*ip, p)).is_ok()
                && std::net::UdpSocket::bind(SocketAddr::new(*ip, p)).is_ok()
        }) {
            return p;
        }
    }
    panic!("no common free port");
}

fn proc_net_has(file: &str, addr: SocketAddr, state: &str) -> bool {
    // /proc/net/{tcp,udp}[6] print each 32-bit word of the address in host (little-endian) order.
    let (file, octets): (String, Vec<u8>) = match addr.ip() {
        IpAddr::V4(v4) => (file.to_string(), v4.octets().to_vec()),
        IpAddr::V6(v6) => (format!("{file}6"), v6.octets().to_vec()),
    };
    let mut want = String::new();
    for w in octets.chunks(4) {
        want.push_str(&format!(
            "{:08X}",
            u32::from_le_bytes([w[0], w[1], w[2], w[3]])
        ));
    }
    let want = format!("{want}:{:04X}", addr.port());
    std::fs::read_to_string(&file).is_ok_and(|s| {
        s.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == want && f[3] == state
        })
    })
}

/// True when something listens on TCP `addr`.
pub fn tcp_listening(addr: SocketAddr) -> bool {
    proc_net_has("/proc/net/tcp", addr, "0A")
}

/// True when a UDP socket is bound to `addr`.
pub fn udp_bound(addr: SocketAddr) -> bool {
    proc_net_has("/proc/net/udp", addr, "07")
}
