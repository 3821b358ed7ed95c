//! `make generate`: writes `deploy/` from the Helm chart rendered with its default values, so the
//! kustomize install and the chart are one source (`e2e/tests/install.rs` checks they match).

use anyhow::Context;
use tapmon_e2e::install::deploy_from_chart;
use tapmon_e2e::root;

fn main() -> anyhow::Result<()> {
    let dir = root().join("deploy");
    for (file, text) in deploy_from_chart()? {
        let path = dir.join(&file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| path.display().to_string())?;
        eprintln!("wrote deploy/{file}");
    }
    Ok(())
}
