//! What GitOps tools make of a monitor's status: kstatus, the library Flux's controllers judge
//! health with (a pinned Go program from `e2e/tools/kstatus`), and the Argo CD health script of
//! `config/argocd/argocd-cm.yaml`, run by a Lua 5.1 interpreter (the language version of the
//! gopher-lua that Argo CD embeds).

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::fixtures::{documents, root};
use crate::install::tools_dir;

/// A health verdict: the tool's status word and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// kstatus: `Current`, `InProgress`, `Failed`...; Argo CD: `Healthy`, `Progressing`,
    /// `Degraded`...
    pub status: String,
    /// The message the tool shows beside it.
    pub message: String,
}

fn run_with_stdin(mut command: Command, stdin: &[u8], what: &str) -> anyhow::Result<String> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(stdin)
        .with_context(|| format!("writing to {what}"))?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn verdicts(text: &str) -> Vec<Health> {
    text.lines()
        .map(|l| {
            let (status, message) = l.split_once('\t').unwrap_or((l, ""));
            Health {
                status: status.to_owned(),
                message: message.to_owned(),
            }
        })
        .collect()
}

/// kstatus' verdict on each object, in order.
pub fn kstatus(objects: &[Value]) -> anyhow::Result<Vec<Health>> {
    let mut input = Vec::new();
    for obj in objects {
        serde_json::to_writer(&mut input, obj)?;
        input.push(b'\n');
    }
    let out = run_with_stdin(
        Command::new(tools_dir()?.join("kstatus")),
        &input,
        "kstatus",
    )?;
    Ok(verdicts(&out))
}

/// The Argo CD health script for `kind` (`TapMonitor` or `ClusterTapMonitor`) as shipped.
pub fn argocd_script(kind: &str) -> anyhow::Result<String> {
    let path = root().join("config/argocd/argocd-cm.yaml");
    let doc = documents(&path)?
        .into_iter()
        .next()
        .context("config/argocd/argocd-cm.yaml is empty")?;
    let key = format!("resource.customizations.health.tapmon.io_{kind}");
    doc["data"][&key]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("argocd-cm.yaml has no {key}"))
}

/// Argo CD's verdict on `obj` by `script`: Argo CD sets the global `obj` and takes the table the
/// script returns.
pub fn argocd_health(script: &str, obj: &Value) -> anyhow::Result<Health> {
    let program = format!(
        "obj = {}\nlocal hs = (function()\n{script}\nend)()\nio.write(hs.status, \"\\t\", hs.message or \"\", \"\\n\")\n",
        lua_value(obj)
    );
    let out = run_with_stdin(
        {
            let mut c = Command::new("lua5.1");
            c.arg("-");
            c
        },
        program.as_bytes(),
        "lua5.1",
    )?;
    verdicts(&out)
        .into_iter()
        .next()
        .context("the health script printed nothing")
}

/// `value` as a Lua table constructor, as Argo CD hands objects to scripts.
fn lua_value(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua_value).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_value(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\{:03}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lua_values_keep_strings_exact() {
        assert_eq!(
            lua_value(&json!({"a": [1, "x\"\\\n\u{1}é"], "b": null})),
            r#"{["a"] = {1, "x\"\\\n\001é"}, ["b"] = nil}"#
        );
    }
}
