//! A real `redis-server` on 127.0.0.1 for the Redis source and sink tests (each includes this module).
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process on 127.0.0.1 (optionally with a password), killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    password: Option<String>,
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

impl Server {
    pub fn start() -> Server {
        Server::start_on(free_port(), None)
    }

    pub fn start_on(port: u16, password: Option<&str>) -> Server {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--daemonize", "no"]);
        if let Some(p) = password {
            cmd.args(["--requirepass", p]);
        }
        let child = match cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "the Redis tests need the redis-server binary, which is not installed: install it \
                 (Debian/Ubuntu: apt-get install redis-server) and run them again"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        let mut server = Server { child, port, password: password.map(str::to_owned) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("redis-server exited at start ({status}); is port {port} free?");
            }
            let pong: Option<String> =
                server.client().get_connection().ok().and_then(|mut c| redis::cmd("PING").query(&mut c).ok());
            if pong.as_deref() == Some("PONG") {
                return server;
            }
            assert!(Instant::now() < deadline, "redis-server on port {port} did not answer PING within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn client(&self) -> redis::Client {
        let auth = self.password.as_ref().map(|p| format!(":{p}@")).unwrap_or_default();
        redis::Client::open(format!("redis://{auth}127.0.0.1:{}/", self.port)).unwrap()
    }

    pub fn conn(&self) -> redis::Connection {
        self.client().get_connection().unwrap()
    }

    /// A source URL on this server: `redis://127.0.0.1:PORT/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("redis://127.0.0.1:{}/{path}", self.port)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
