//! Smoke tests of the memcached test-support module against a real memcached.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use integration_tests::memcached::Memcached;

const TIMEOUT: Duration = Duration::from_secs(5);

fn connect(server: &Memcached) -> TcpStream {
    let address: SocketAddr = server.addr().parse().expect("addr() is a socket address");
    let stream = TcpStream::connect_timeout(&address, TIMEOUT).expect("connect to memcached");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Sends `request` and reads until the reply ends with one of `terminators`.
fn exchange(stream: &mut impl ReadWrite, request: &[u8], terminators: &[&str]) -> String {
    stream.write_all(request).expect("send the request");
    let mut reply = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        let read = stream.read(&mut buffer).expect("read the reply");
        assert!(read > 0, "memcached closed the connection; got {reply:?}");
        reply.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&reply);
        if terminators.iter().any(|end| text.ends_with(end)) {
            return text.into_owned();
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[test]
fn stats_report_the_pid_and_count_an_open_connection() {
    let server = Memcached::start();
    let mut client = connect(&server);
    let version = exchange(&mut client, b"version\r\n", &["\r\n"]);
    assert!(version.starts_with("VERSION "), "{version:?}");

    let stats = server.stats();
    let pid: u32 = stats["pid"].parse().expect("pid is a number");
    assert!(pid > 0);
    // The open client plus the connection stats() itself uses.
    assert!(server.stat("curr_connections") >= 2, "{stats:?}");
}

#[test]
fn set_then_get_over_raw_tcp_returns_the_value_and_counts_it() {
    let server = Memcached::start();
    let mut client = connect(&server);
    assert_eq!(
        exchange(&mut client, b"set k 0 0 1\r\nv\r\n", &["\r\n"]),
        "STORED\r\n"
    );
    assert_eq!(
        exchange(&mut client, b"get k\r\n", &["END\r\n"]),
        "VALUE k 0 1\r\nv\r\nEND\r\n"
    );
    assert_eq!(server.stat("cmd_set"), 1);
    assert_eq!(server.stat("cmd_get"), 1);
    assert_eq!(server.stat("get_hits"), 1);
    assert_eq!(server.stat("curr_items"), 1);
}

#[test]
fn flush_all_makes_stored_items_unreadable() {
    let server = Memcached::start();
    let mut client = connect(&server);
    assert_eq!(
        exchange(&mut client, b"set k 0 0 1\r\nv\r\n", &["\r\n"]),
        "STORED\r\n"
    );
    server.flush_all();
    assert_eq!(exchange(&mut client, b"get k\r\n", &["END\r\n"]), "END\r\n");
}

#[test]
fn stopped_server_refuses_tcp_connections() {
    let mut server = Memcached::start();
    let address: SocketAddr = server.addr().parse().unwrap();
    server.stop();
    assert!(!server.is_running());
    let error = TcpStream::connect_timeout(&address, TIMEOUT).expect_err("connection refused");
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused, "{error}");
}

#[test]
fn restarted_server_serves_again_on_the_same_port_with_an_empty_cache() {
    let mut server = Memcached::start();
    let port = server.port();
    let mut client = connect(&server);
    assert_eq!(
        exchange(&mut client, b"set k 0 0 1\r\nv\r\n", &["\r\n"]),
        "STORED\r\n"
    );
    drop(client);

    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(server.addr(), format!("127.0.0.1:{port}"));
    assert!(server.is_running());
    let mut client = connect(&server);
    assert_eq!(exchange(&mut client, b"get k\r\n", &["END\r\n"]), "END\r\n");
    assert_eq!(
        exchange(&mut client, b"set k 0 0 1\r\nw\r\n", &["\r\n"]),
        "STORED\r\n"
    );
    assert!(server.log().matches("--- starting").count() == 2);
}

#[test]
fn unix_socket_mode_answers_version_on_the_socket() {
    let server = Memcached::builder().unix_socket().start();
    let path = server.socket_path().expect("unix socket mode has a path");
    let mut client = UnixStream::connect(&path).expect("connect to the socket");
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client.set_write_timeout(Some(TIMEOUT)).unwrap();
    let version = exchange(&mut client, b"version\r\n", &["\r\n"]);
    assert!(version.starts_with("VERSION "), "{version:?}");
    // The blocking helpers use the socket too.
    assert!(server.stat("curr_connections") >= 2);
}

#[test]
fn tcp_mode_has_no_socket_path() {
    let server = Memcached::start();
    assert_eq!(server.socket_path(), None);
}

#[test]
fn item_size_max_1k_rejects_a_2000_byte_set_with_server_error() {
    let server = Memcached::builder()
        .item_size_max(1024)
        .args(["-m", "64"])
        .start();
    let mut client = connect(&server);
    let mut request = b"set big 0 0 2000\r\n".to_vec();
    request.extend_from_slice(&[b'x'; 2000]);
    request.extend_from_slice(b"\r\n");
    let reply = exchange(&mut client, &request, &["\r\n"]);
    assert!(reply.starts_with("SERVER_ERROR"), "{reply:?}");

    // memcached swallows the rejected data; the connection stays usable.
    let mut request = b"set small 0 0 500\r\n".to_vec();
    request.extend_from_slice(&[b'x'; 500]);
    request.extend_from_slice(b"\r\n");
    assert_eq!(exchange(&mut client, &request, &["\r\n"]), "STORED\r\n");
}

#[test]
#[should_panic(expected = "apt-get install -y memcached")]
fn missing_binary_panics_with_the_install_hint() {
    let _server = Memcached::builder()
        .binary("/nonexistent/memcached")
        .start();
}

#[test]
fn server_exiting_at_startup_panics_with_its_log() {
    let panic = std::panic::catch_unwind(|| {
        Memcached::builder()
            .arg("--definitely-not-a-memcached-option")
            .start()
    })
    .expect_err("memcached rejects the option");
    let message = panic
        .downcast_ref::<String>()
        .expect("the panic message is a String");
    assert!(message.contains("memcached exited"), "{message}");
    assert!(message.contains("server log"), "{message}");
    assert!(
        message.contains("--definitely-not-a-memcached-option"),
        "the log holds the command line: {message}"
    );
}
