//! What the differential tests share: a small seedable generator, the same on every machine
//! ([`Rng`], splitmix64), and a reference implementation run in the test virtualenv with its
//! input on stdin ([`run`]). Apart so that each differential test holds only its cases and
//! its comparison (recurrence: `functions/recur/tests/all/differential.rs`; quiet hours:
//! `functions/notify/tests/all/quiet_hours.rs`).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// splitmix64: small, seedable, the same on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Runs `script` with `args` in the test virtualenv's Python, `input` on its stdin (written
/// from a thread of its own, so a large input and a large output cannot block each other).
pub fn run(script: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(crate::python())
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the reference starts");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let body = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(body.as_bytes()));
    let out = child.wait_with_output().expect("the reference runs");
    writer.join().expect("the writer ends").expect("input written");
    out
}
