//! Traffic checks (`[[checks]]`): unique names, known nodes, and the two
//! addresses a probe goes between (explicit ones must belong to their
//! node; by default the endpoints' inner addresses, or the PPP link's).

use std::collections::BTreeSet;
use std::net::IpAddr;

use toml::Spanned;

use super::super::file::{CheckSpec, ScenarioFile};
use super::diag::{known_node, sp, Diags};
use super::endpoints::Endpoints;
use super::network::Network;
use crate::model::{self as cell, CheckKind};

/// Largest ping or UDP payload (an IPv4 datagram holds 65507 bytes of UDP
/// payload; a round figure below it).
const DATAGRAM_MAX: u32 = 65_000;
/// Largest TCP echo (16 MiB).
const TCP_MAX: u32 = 16 << 20;

/// The validated checks.
pub(super) struct Checks {
    /// Every check name in the file.
    pub names: BTreeSet<String>,
    /// The valid checks, resolved.
    pub list: Vec<cell::Check>,
}

/// Validate every check.
pub(super) fn validate(
    d: &mut Diags<'_>,
    f: &ScenarioFile,
    net: &Network,
    eps: &Endpoints,
    ppp: Option<&cell::Ppp>,
) -> Checks {
    let mut out = Checks {
        names: BTreeSet::new(),
        list: Vec::new(),
    };
    for (i, c) in f.checks.iter().enumerate() {
        let c = c.get_ref();
        let field = format!("checks[{i}]");
        if !out.names.insert(c.name.get_ref().clone()) {
            d.err(
                sp(&c.name),
                format!("{field}.name"),
                format!("duplicate check name `{}`", c.name.get_ref()),
            );
        }
        let kf = known_node(d, &net.nodes, &c.from, format!("{field}.from"));
        let kt = known_node(d, &net.nodes, &c.to, format!("{field}.to"));
        let ends = if c.over.is_some() {
            over_ppp(d, f, c, &field, ppp)
        } else {
            through_tunnel(d, net, eps, c, &field)
        };
        let implicit = c.src.is_none() && c.over.is_none();
        let src_pool = implicit.then(|| eps.vip_pool(c.from.get_ref())).flatten();
        if let (true, true, Some((src, dst))) = (kf, kt, ends) {
            listener_is_free(d, &out.list, c, &field, dst);
            out.list.push(cell::Check {
                name: c.name.get_ref().clone(),
                kind: *c.kind.get_ref(),
                from: c.from.get_ref().clone(),
                to: c.to.get_ref().clone(),
                src,
                dst,
                port: c.port.as_ref().map(|p| *p.get_ref()),
                count: *c.count.get_ref(),
                size: c.size.as_ref().map(|s| *s.get_ref()),
                src_pool,
                interval: interval(d, c, &field),
                df: c.df.as_ref().map(|s| *s.get_ref()),
            });
        }
    }
    out
}

/// Checks run at once, each UDP or TCP check with its own echo responder:
/// two on one address and port would collide.
fn listener_is_free(
    d: &mut Diags<'_>,
    before: &[cell::Check],
    c: &CheckSpec,
    field: &str,
    dst: IpAddr,
) {
    let (kind, Some(port)) = (*c.kind.get_ref(), c.port.as_ref()) else {
        return;
    };
    if let Some(other) = before
        .iter()
        .find(|o| o.kind == kind && o.dst == dst && o.port == Some(*port.get_ref()))
    {
        let msg = format!(
            "checks run at the same time, and check `{}` already has its {kind} echo responder on {dst} port {}: choose another port",
            other.name,
            port.get_ref()
        );
        d.err(sp(port), format!("{field}.port"), msg);
    }
}

/// A check over the PPP link: between its two addresses, which exist only
/// once the link is up.
fn over_ppp(
    d: &mut Diags<'_>,
    f: &ScenarioFile,
    c: &CheckSpec,
    field: &str,
    ppp: Option<&cell::Ppp>,
) -> Option<(IpAddr, IpAddr)> {
    let over = c.over.as_ref()?;
    let Some(p) = ppp else {
        if f.ppp.is_none() {
            d.err(
                sp(over),
                format!("{field}.over"),
                "`over = \"ppp\"` needs a `[ppp]` section",
            );
        }
        return None;
    };
    if c.from.get_ref() != &p.client || c.to.get_ref() != &p.server {
        d.err(
            sp(over),
            format!("{field}.over"),
            format!(
                "a check over PPP goes from the PPP client ({}) to its server ({})",
                p.client, p.server
            ),
        );
    }
    if let Some(x) = c.src.as_ref().or(c.dst.as_ref()) {
        d.err(
            sp(x),
            field,
            "a check over PPP uses the link's addresses: leave out src and dst",
        );
    }
    Some((p.client_ip, p.server_ip))
}

/// A check through the tunnel (or plain routing): its addresses, port and
/// count.
fn through_tunnel(
    d: &mut Diags<'_>,
    net: &Network,
    eps: &Endpoints,
    c: &CheckSpec,
    field: &str,
) -> Option<(IpAddr, IpAddr)> {
    let src = end(d, net, eps, &c.src, &c.from, field, "src");
    let dst = end(d, net, eps, &c.dst, &c.to, field, "dst");
    // An explicit address must belong to its node: the probe socket is
    // bound there (src) or the echo responder listens there (dst).
    for (end, explicit, node, which) in [(src, &c.src, &c.from, "src"), (dst, &c.dst, &c.to, "dst")]
    {
        if let (Some(e), Some(a)) = (explicit, end) {
            let owned = net.owns(node.get_ref(), a) || eps.inner_of.get(node.get_ref()) == Some(&a);
            if !owned && net.nodes.contains(node.get_ref()) {
                d.err(
                    sp(e),
                    format!("{field}.{which}"),
                    format!("{a} is not an address of {}", node.get_ref()),
                );
            }
        }
    }
    port_and_count(d, c, field);
    let (src, dst) = (src?, dst?);
    if src.is_ipv4() != dst.is_ipv4() {
        let span = c.dst.as_ref().map_or_else(|| sp(&c.to), sp);
        d.err(
            span,
            format!("{field}.dst"),
            format!(
                "{dst} is {} but the source {src} is {}: a check needs one family (no translator is on the path)",
                super::network::family(dst),
                super::network::family(src)
            ),
        );
        return None;
    }
    Some((src, dst))
}

/// One end of a check: the explicit address; else the node's inner
/// address; else its one link address inside its `subnets` (a site's
/// gateway); else its only link address (a host on a LAN).
fn end(
    d: &mut Diags<'_>,
    net: &Network,
    eps: &Endpoints,
    explicit: &Option<Spanned<String>>,
    node: &Spanned<String>,
    field: &str,
    which: &str,
) -> Option<IpAddr> {
    if let Some(s) = explicit {
        return d.addr(s, &format!("{field}.{which}"));
    }
    let n = node.get_ref();
    if eps.vip.contains_key(n) {
        if which == "dst" {
            let msg = format!("{n}'s virtual IP is known only once its tunnel is up: send the check from it instead (checks to a virtual IP are not supported yet)");
            d.err(sp(node), format!("{field}.dst"), msg);
            return None;
        }
        // The pool's address stands in until the tunnel is up.
        return eps.vip_pool(n).map(|p| p.network());
    }
    let a = eps
        .inner_of
        .get(n)
        .copied()
        .or_else(|| default_addr(net, eps, n));
    if a.is_none() && net.nodes.contains(n) {
        d.err(
            sp(node),
            format!("{field}.{which}"),
            format!("node {n} has no inner address, and not exactly one link address (in its subnets) to use instead; set `{which}`"),
        );
    }
    a
}

/// The address a check uses at a node with no inner address.
fn default_addr(net: &Network, eps: &Endpoints, n: &str) -> Option<IpAddr> {
    let mut own: Vec<IpAddr> = net.addrs_of(n).collect();
    own.dedup();
    if let Some(subnets) = eps.subnets_of.get(n) {
        own.retain(|a| subnets.iter().any(|s| s.contains(a)));
    }
    match own[..] {
        [a] => Some(a),
        _ => None,
    }
}

/// `interval`: a bounded probe interval for ping and UDP.
fn interval(d: &mut Diags<'_>, c: &CheckSpec, field: &str) -> Option<std::time::Duration> {
    let i = c.interval.as_ref()?;
    let f = format!("{field}.interval");
    if *c.kind.get_ref() == CheckKind::Tcp {
        d.err(
            sp(i),
            &f,
            "a tcp check's connections follow one another: no interval",
        );
        return None;
    }
    match super::knobs::duration(i.get_ref()) {
        Ok(x) if x <= std::time::Duration::from_secs(1) => Some(x),
        Ok(_) => {
            d.err(sp(i), &f, "at most 1s between probes");
            None
        }
        Err(m) => {
            d.err(sp(i), &f, m);
            None
        }
    }
}

fn port_and_count(d: &mut Diags<'_>, c: &CheckSpec, field: &str) {
    let kind = *c.kind.get_ref();
    match (kind, &c.port) {
        (CheckKind::Udp | CheckKind::Tcp, None) => d.err(
            sp(&c.kind),
            format!("{field}.port"),
            format!("a {kind} check needs a port"),
        ),
        (CheckKind::Udp | CheckKind::Tcp, Some(p)) if *p.get_ref() == 0 => {
            d.err(sp(p), format!("{field}.port"), "port must be 1-65535")
        }
        (CheckKind::Ping, Some(p)) => {
            d.err(sp(p), format!("{field}.port"), "a ping check has no port")
        }
        _ => {}
    }
    if let Some(s) = &c.size {
        let max = match kind {
            CheckKind::Tcp => TCP_MAX,
            _ => DATAGRAM_MAX,
        };
        if !(1..=max).contains(s.get_ref()) {
            let msg = format!("a {kind} check's size is 1-{max} bytes");
            d.err(sp(s), format!("{field}.size"), msg);
        }
    }
    if !(1..=100).contains(c.count.get_ref()) {
        d.err(
            sp(&c.count),
            format!("{field}.count"),
            "count must be 1-100",
        );
    }
}
