//! Applying a ruleset inside a gateway with `nft -f -`.

use tokio::io::AsyncWriteExt;

use crate::error::TopologyError;
use crate::topology::netns::Netns;
use crate::topology::Gateway;

/// Load `ruleset` into the gateway's namespace (never the host's: the nft
/// process enters the node before it starts). With `replace`, vpnlab's
/// table (of the gateway's family) is deleted first in the same
/// transaction.
pub async fn apply(
    ns: &Netns,
    gw: &Gateway,
    ruleset: &str,
    replace: bool,
) -> Result<(), TopologyError> {
    if ruleset.is_empty() && !replace {
        return Ok(());
    }
    // `table` declares it (a no-op if it exists) so `delete` cannot fail.
    // The timeouts table stays as it is (see `TIMEOUT_TABLE`).
    let fam = gw.table_family();
    let text = if replace {
        let main = ruleset
            .split_once(&format!(
                "table {fam} {}",
                crate::topology::nat::TIMEOUT_TABLE
            ))
            .map_or(ruleset, |(main, _)| main);
        format!("table {fam} vpnlab\ndelete table {fam} vpnlab\n{main}")
    } else {
        ruleset.to_string()
    };
    let fail = |message: String| TopologyError::Nat {
        node: ns.node.clone(),
        profile: gw.profile.to_string(),
        message,
    };
    let mut child = ns
        .command("nft", vec![])
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "cannot run nft ({e}); install it: apt-get install nftables"
            ))
        })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(text.as_bytes())
        .await
        .map_err(|e| fail(e.to_string()))?;
    drop(stdin);
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}
