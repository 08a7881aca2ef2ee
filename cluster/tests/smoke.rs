//! Real processes on 127.0.0.1: three `cluster-node`s find each other by gossip, link up
//! over TCP, notice a `kill -9` within the 3 s budget, take the restarted node back with a
//! new generation, and drop a node that leaves on SIGTERM at once.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

/// What the nodes printed, by node name: the last `live` and `links` lines.
struct Cluster {
    children: HashMap<String, Child>,
    ports: HashMap<String, (u16, u16)>,
    lines: Receiver<(String, String)>,
    tx: Sender<(String, String)>,
    live: HashMap<String, Vec<(String, u64)>>,
    links: HashMap<String, Vec<String>>,
    exited: Vec<String>,
    /// Nodes we stopped on purpose (their exit is expected).
    stopped: Vec<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn parse_keys(s: &str) -> Vec<(String, u64)> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|k| {
            let (id, g) = k.split_once('@').unwrap();
            (id.to_owned(), g.parse().unwrap())
        })
        .collect()
}

impl Cluster {
    fn new() -> Cluster {
        let (tx, lines) = channel();
        Cluster {
            children: HashMap::new(),
            ports: HashMap::new(),
            lines,
            tx,
            live: HashMap::new(),
            links: HashMap::new(),
            exited: Vec::new(),
            stopped: Vec::new(),
        }
    }

    fn seeds(&self, except: &str) -> String {
        let mut s: Vec<String> = self
            .ports
            .iter()
            .filter(|(n, _)| *n != except)
            .map(|(_, (g, _))| format!("127.0.0.1:{g}"))
            .collect();
        s.sort();
        s.join(",")
    }

    fn spawn(&mut self, name: &str) {
        let (gossip, peer) = self.ports[name];
        let mut child = Command::new(env!("CARGO_BIN_EXE_cluster-node"))
            .args(["--node-id", name, "--cluster-id", "smoke"])
            .args(["--gossip", &format!("127.0.0.1:{gossip}")])
            .args(["--peer", &format!("127.0.0.1:{peer}")])
            .args(["--seeds", &self.seeds(name)])
            .env("RAPTOR_CLUSTER_SECRET", "smoke-test-cluster-secret")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn cluster-node");
        let out = child.stdout.take().unwrap();
        let tx = self.tx.clone();
        let n = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((n.clone(), line)).is_err() {
                    break;
                }
            }
            let _ = tx.send((n, "exit".to_owned()));
        });
        self.live.remove(name);
        self.links.remove(name);
        self.stopped.retain(|n| n != name);
        self.children.insert(name.to_owned(), child);
    }

    fn pump(&mut self, until: Instant) {
        let wait = until
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(50));
        if let Ok((n, line)) = self.lines.recv_timeout(wait) {
            if let Some(rest) = line.strip_prefix("live ") {
                self.live.insert(n, parse_keys(rest));
            } else if let Some(rest) = line.strip_prefix("links ") {
                self.links.insert(
                    n,
                    rest.split(',')
                        .filter(|x| !x.is_empty())
                        .map(str::to_owned)
                        .collect(),
                );
            } else if line == "live" {
                self.live.insert(n, Vec::new());
            } else if line == "links" {
                self.links.insert(n, Vec::new());
            } else if line == "exit" && !self.stopped.contains(&n) {
                self.exited.push(n);
            }
        }
    }

    /// Waits until `f` holds; returns how long it took, or `None` after `limit`.
    fn wait(&mut self, limit: Duration, mut f: impl FnMut(&Cluster) -> bool) -> Option<Duration> {
        let t0 = Instant::now();
        loop {
            if f(self) {
                return Some(t0.elapsed());
            }
            if t0.elapsed() > limit || !self.exited.is_empty() {
                return None;
            }
            self.pump(t0 + limit);
        }
    }

    fn ids(&self, at: &str) -> Vec<String> {
        self.live
            .get(at)
            .map(|v| v.iter().map(|(i, _)| i.clone()).collect())
            .unwrap_or_default()
    }

    fn generation_seen(&self, at: &str, of: &str) -> Option<u64> {
        self.live
            .get(at)?
            .iter()
            .find(|(i, _)| i == of)
            .map(|(_, g)| *g)
    }
}

fn random_ports() -> HashMap<String, (u16, u16)> {
    let base = 20_000 + (fastrand::u16(0..1000)) * 10;
    ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, n)| ((*n).to_owned(), (base + i as u16, base + 5 + i as u16)))
        .collect()
}

/// Starts a, b, c on random ports in 20000–30000; retries on other ports when a node exits
/// (address in use) before the cluster converges.
fn start_cluster() -> Cluster {
    for _ in 0..5 {
        let mut c = Cluster::new();
        c.ports = random_ports();
        for n in ["a", "b", "c"] {
            c.spawn(n);
        }
        let all = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let ok = c.wait(Duration::from_secs(15), |c| {
            ["a", "b", "c"].iter().all(|n| c.ids(n) == all)
        });
        if ok.is_some() {
            return c;
        }
        eprintln!(
            "cluster did not converge (exited: {:?}); retrying on other ports",
            c.exited
        );
    }
    panic!("could not start a 3-node cluster");
}

#[test]
fn three_processes_converge_detect_a_kill_and_take_a_restart_back() {
    let mut c = start_cluster();
    let two = |a: &str, b: &str| vec![a.to_owned(), b.to_owned()];

    // TCP links: every node is linked with the two others.
    c.wait(Duration::from_secs(10), |c| {
        ["a", "b", "c"]
            .iter()
            .all(|n| c.links.get(*n).is_some_and(|l| l.len() == 2))
    })
    .expect("all links up");
    let old_gen = c.generation_seen("a", "c").unwrap();

    // kill -9 c: a and b drop it within the 3 s budget.
    c.stopped.push("c".into());
    c.children.get_mut("c").unwrap().kill().unwrap();
    c.children.get_mut("c").unwrap().wait().unwrap();
    let took = c
        .wait(Duration::from_secs(3), |c| {
            c.ids("a") == two("a", "b") && c.ids("b") == two("a", "b")
        })
        .expect("c dropped within 3 s");
    eprintln!("kill -9 detected in {took:?}");
    // Let c's "exit" line arrive before c starts again.
    c.wait(Duration::from_millis(200), |_| false);

    // Restart c on the same ports: back with a newer generation, links up again.
    c.spawn("c");
    let all = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
    c.wait(Duration::from_secs(10), |c| {
        ["a", "b", "c"].iter().all(|n| c.ids(n) == all)
            && c.generation_seen("a", "c").is_some_and(|g| g > old_gen)
            && c.generation_seen("b", "c").is_some_and(|g| g > old_gen)
    })
    .expect("c back with a new generation");
    c.wait(Duration::from_secs(10), |c| {
        ["a", "b", "c"]
            .iter()
            .all(|n| c.links.get(*n).is_some_and(|l| l.len() == 2))
    })
    .expect("links up again");

    // SIGTERM b: graceful leave, dropped by a and c well before a failure detector would.
    c.stopped.push("b".into());
    let pid = c.children["b"].id();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let took = c
        .wait(Duration::from_secs(3), |c| {
            c.ids("a") == two("a", "c") && c.ids("c") == two("a", "c")
        })
        .expect("b dropped after SIGTERM");
    eprintln!("graceful leave seen in {took:?}");
    let b = c.children.get_mut("b").unwrap();
    let code = b.wait().unwrap();
    assert!(code.success(), "{code:?}");
}
