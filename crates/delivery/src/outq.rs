//! The one unsafe corner: reading a TCP socket's send-queue length with the `SIOCOUTQ` ioctl.
//!
//! On Linux, `SIOCOUTQ` (same number as `TIOCOUTQ`) on a TCP socket returns the bytes in the send
//! queue that the peer has not acknowledged yet (unsent plus sent-but-unacked). Bytes written
//! minus this value is therefore what the peer's kernel has acknowledged: the engine's
//! confirmation for TCP and TLS.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Bytes in `fd`'s send queue not yet acknowledged by the peer.
pub fn unacked_bytes(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut value: libc::c_int = 0;
    // SAFETY: `fd` is a valid open descriptor for the lifetime of the borrow; TIOCOUTQ (alias
    // SIOCOUTQ for sockets) writes exactly one `int` through the pointer, which points to a live,
    // properly aligned `c_int` on this stack frame.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCOUTQ,
            &mut value as *mut libc::c_int,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::try_from(value).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn queue_drains_once_the_peer_acknowledges() -> io::Result<()> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let mut client = std::net::TcpStream::connect(listener.local_addr()?)?;
        let (mut server, _) = listener.accept()?;
        client.write_all(&[7u8; 10_000])?;
        let mut buf = vec![0u8; 10_000];
        server.read_exact(&mut buf)?;
        // The peer has read everything, so its kernel acknowledged it; wait for our ACK to arrive.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let q = unacked_bytes(client.as_fd())?;
            if q == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "send queue stuck at {q}"
            );
            std::thread::yield_now();
        }
        Ok(())
    }
}
