//! Python processes that time their own contenders (the binding, Synapse) on request, so
//! that they run in the same rounds as the Rust contenders. One JSON object per line each
//! way; the worker times its loop itself, so the pipe is not part of any figure.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

pub struct Worker {
    pub name: String,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The worker's greeting: versions and what it can run.
    pub info: serde_json::Value,
}

impl Worker {
    pub fn start(
        name: &str,
        python: &str,
        script: &Path,
        inputs: &Path,
        env: &[(&str, String)],
    ) -> Result<Worker, String> {
        let mut cmd = Command::new(python);
        cmd.arg(script)
            .arg(inputs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{name}: cannot start {python}: {e}"))?;
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut w = Worker {
            name: name.to_string(),
            child,
            stdin,
            stdout,
            info: serde_json::Value::Null,
        };
        w.info = w.read()?;
        if w.info.get("ready") != Some(&serde_json::Value::Bool(true)) {
            return Err(format!("{name}: bad greeting {}", w.info));
        }
        Ok(w)
    }

    fn read(&mut self) -> Result<serde_json::Value, String> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(|e| format!("{}: {e}", self.name))?;
        if n == 0 {
            return Err(format!("{}: the worker exited", self.name));
        }
        serde_json::from_str(&line).map_err(|e| format!("{}: {e}: {line}", self.name))
    }

    /// Sends one request and waits for its answer.
    pub fn call(&mut self, req: serde_json::Value) -> Result<serde_json::Value, String> {
        let mut text = serde_json::to_string(&req).unwrap();
        text.push('\n');
        self.stdin
            .write_all(text.as_bytes())
            .and_then(|_| self.stdin.flush())
            .map_err(|e| format!("{}: {e}", self.name))?;
        let resp = self.read()?;
        if let Some(err) = resp.get("error") {
            return Err(format!("{}: {err}", self.name));
        }
        Ok(resp)
    }

    /// Times `op` over a set `reps` times; nanoseconds per call.
    pub fn time(&mut self, op: &str, set: &str, reps: usize) -> Result<f64, String> {
        let r =
            self.call(serde_json::json!({"cmd": "time", "op": op, "set": set, "reps": reps}))?;
        let ns = r["ns"].as_f64().ok_or("no ns")?;
        let calls = r["calls"].as_f64().ok_or("no calls")?;
        Ok(ns / calls)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.stdin.write_all(b"{\"cmd\": \"quit\"}\n");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}
