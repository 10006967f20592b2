//! The knobs of a scenario beyond topology: a gateway's NAT behaviour and an
//! endpoint's timers, fragmentation, authentication and IPsec protocol.
//! Parsed and checked here; the matrix may vary an endpoint's timers,
//! fragmentation and MOBIKE.

use std::time::Duration;

use toml::Spanned;

use super::super::file::{BehaviourSpec, EndpointSpec};
use super::diag::{sp, Diags};
use super::matrix::{Axes, Choice, Pick, Varies};
use crate::model::{known, Auth, EndpointKnobs, Identity, Proto};
use crate::model::{Block, Filter, Knobs, Ports};

/// Longest pause, wait, keepalive or DPD interval a file may ask for: the
/// field suite's timers are scaled down to seconds.
pub const MAX_DURATION: Duration = Duration::from_secs(60);

/// A knob's value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadValue {
    /// Not `5s` or `500ms`.
    #[error("`{0}` is not a duration like \"5s\" or \"500ms\"")]
    NotADuration(String),
    /// Zero or too long.
    #[error("`{0}` is out of range (more than 0, at most {max}s)", max = MAX_DURATION.as_secs())]
    OutOfRange(String),
    /// Milliseconds where the daemons take seconds.
    #[error("`{0}`: IKE daemons take whole seconds")]
    NotWholeSeconds(String),
    /// Not `yes` or `no`.
    #[error("`{0}`: expected \"yes\" or \"no\"")]
    NotYesNo(String),
}

/// Parse `"5s"`, `"500ms"` (at most [`MAX_DURATION`], more than zero).
pub fn duration(text: &str) -> Result<Duration, BadValue> {
    let bad = || BadValue::NotADuration(text.to_string());
    let d = if let Some(ms) = text.strip_suffix("ms") {
        Duration::from_millis(ms.parse().map_err(|_| bad())?)
    } else if let Some(s) = text.strip_suffix('s') {
        Duration::from_secs(s.parse().map_err(|_| bad())?)
    } else {
        return Err(bad());
    };
    if d.is_zero() || d > MAX_DURATION {
        return Err(BadValue::OutOfRange(text.to_string()));
    }
    Ok(d)
}

/// A keepalive or DPD interval: whole seconds, or `off`.
fn interval(text: &str) -> Result<Option<u32>, BadValue> {
    if text == "off" {
        return Ok(None);
    }
    let d = duration(text)?;
    if d.subsec_millis() != 0 {
        return Err(BadValue::NotWholeSeconds(text.to_string()));
    }
    Ok(Some(d.as_secs() as u32))
}

fn yes_no(text: &str) -> Result<bool, BadValue> {
    match text {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(BadValue::NotYesNo(other.to_string())),
    }
}

/// Check one value of the `keepalive`, `dpd`, `fragmentation` or `mobike`
/// axis.
pub(super) fn endpoint_axis_value(d: &mut Diags<'_>, axis: &str, v: &Spanned<String>) {
    let r = match axis {
        "fragmentation" | "mobike" => yes_no(v.get_ref()).map(|_| ()),
        _ => interval(v.get_ref()).map(|_| ()),
    };
    if let Err(m) = r {
        d.err(sp(v), format!("matrix.{axis}"), m);
    }
}

/// An endpoint's knobs as the file sets them.
#[derive(Debug, Clone, Copy)]
pub(super) struct FileKnobs {
    pub knobs: EndpointKnobs,
    /// Which of keepalive, dpd, fragmentation, mobike the endpoint sets
    /// itself (an axis does not override those).
    pub own: [bool; 4],
}

/// An endpoint's knobs in every cell: the file's, with the `keepalive`,
/// `dpd`, `fragmentation` and `mobike` axes for those it leaves to the
/// matrix.
#[derive(Debug, Clone)]
pub(super) struct KnobChoice {
    knobs: EndpointKnobs,
    keepalive: Choice<Option<u32>>,
    dpd: Choice<Option<u32>>,
    fragmentation: Choice<bool>,
    mobike: Choice<bool>,
}

impl FileKnobs {
    /// With the matrix's axes (`None` if an axis value does not parse,
    /// which the matrix check reports).
    pub(super) fn choices(&self, axes: &Axes) -> Option<KnobChoice> {
        let k = self.knobs;
        let interval = |v: &str| interval(v).ok();
        let yes_no = |v: &str| yes_no(v).ok();
        Some(KnobChoice {
            knobs: k,
            keepalive: own_or_axis(axes, self.own[0], Varies::Keepalive, k.keepalive, interval)?,
            dpd: own_or_axis(axes, self.own[1], Varies::Dpd, k.dpd, interval)?,
            fragmentation: own_or_axis(
                axes,
                self.own[2],
                Varies::Fragmentation,
                k.fragmentation,
                yes_no,
            )?,
            mobike: own_or_axis(axes, self.own[3], Varies::Mobike, k.mobike, yes_no)?,
        })
    }
}

/// The endpoint's own setting, or the axis's when it leaves it to the matrix.
fn own_or_axis<T>(
    axes: &Axes,
    own: bool,
    varies: Varies,
    fixed: T,
    parse: impl Fn(&str) -> Option<T>,
) -> Option<Choice<T>> {
    if own {
        Some(Choice::Fixed(fixed))
    } else {
        axes.choice(&varies, fixed, parse)
    }
}

impl KnobChoice {
    /// The knobs in the cell `pick`.
    pub(super) fn at(&self, pick: &Pick<'_>) -> EndpointKnobs {
        EndpointKnobs {
            keepalive: *self.keepalive.at(pick),
            dpd: *self.dpd.at(pick),
            fragmentation: *self.fragmentation.at(pick),
            mobike: *self.mobike.at(pick),
            ..self.knobs
        }
    }
}

/// Parse and check an endpoint's knobs.
pub(super) fn endpoint_knobs(
    d: &mut Diags<'_>,
    spec: &Spanned<EndpointSpec>,
    field: &str,
) -> FileKnobs {
    let e = spec.get_ref();
    let own = [
        e.keepalive.is_some(),
        e.dpd.is_some(),
        e.fragmentation.is_some(),
        e.mobike.is_some(),
    ];
    let mut k = EndpointKnobs::default();
    for (name, v, slot) in [
        ("keepalive", &e.keepalive, &mut k.keepalive),
        ("dpd", &e.dpd, &mut k.dpd),
    ] {
        if let Some(v) = v {
            match interval(v.get_ref()) {
                Ok(x) => *slot = x,
                Err(m) => d.err(sp(v), format!("{field}.{name}"), m),
            }
        }
    }
    for (name, v, slot) in [
        ("mobike", &e.mobike, &mut k.mobike),
        ("fragmentation", &e.fragmentation, &mut k.fragmentation),
    ] {
        if let Some(v) = v {
            match yes_no(v.get_ref()) {
                Ok(x) => *slot = x,
                Err(m) => d.err(sp(v), format!("{field}.{name}"), m),
            }
        }
    }
    if let Some(auth) = auth(d, spec, field) {
        k.auth = auth;
    }
    match e.proto.as_ref().map(|p| (p, p.get_ref().as_str())) {
        None | Some((_, "esp")) => {}
        Some((_, "ah")) => k.proto = Proto::Ah,
        Some((p, other)) => d.err(
            sp(p),
            format!("{field}.proto"),
            format!("unknown IPsec protocol `{other}` (known: esp, ah)"),
        ),
    }
    FileKnobs { knobs: k, own }
}

/// An endpoint's authentication, with the fields that go with it.
fn auth(d: &mut Diags<'_>, spec: &Spanned<EndpointSpec>, field: &str) -> Option<Auth> {
    let e = spec.get_ref();
    // Pre-shared keys too: each stack parses the identity by its form.
    if let Err(err) = Identity::parse(e.id.get_ref()) {
        d.err(sp(&e.id), format!("{field}.id"), err.to_string());
    }
    match e.auth.as_ref().map(|a| (a, a.get_ref().as_str())) {
        None | Some((_, "psk")) => {
            if e.psk.is_none() {
                d.err(
                    sp(spec),
                    format!("{field}.psk"),
                    "missing: a pre-shared key (or `auth = \"cert\"`)",
                );
            }
            if let Some(c) = &e.cert_size {
                d.err(
                    sp(c),
                    format!("{field}.cert_size"),
                    "only with `auth = \"cert\"`",
                );
            }
            None
        }
        Some((_, "cert")) => {
            if let Some(c) = &e.cert_size {
                if !(1..=60_000).contains(c.get_ref()) {
                    d.err(sp(c), format!("{field}.cert_size"), "must be 1-60000 bytes");
                }
            }
            if let Some(p) = &e.psk {
                d.err(
                    sp(p),
                    format!("{field}.psk"),
                    "not used with `auth = \"cert\"`: remove it",
                );
            }
            let size = e.cert_size.as_ref().map(|c| *c.get_ref());
            Some(Auth::Cert { size })
        }
        Some((a, other)) => {
            d.err(
                sp(a),
                format!("{field}.auth"),
                format!("unknown authentication `{other}` (known: psk, cert)"),
            );
            None
        }
    }
}

/// Parse and check a gateway's `behaviour` table.
pub(super) fn nat_knobs(d: &mut Diags<'_>, b: &BehaviourSpec, field: &str) -> Knobs {
    let mut k = Knobs::default();
    if let Some(p) = &b.ports {
        match p.get_ref().as_str() {
            "preserve" => k.ports = Ports::Preserve,
            "random" => k.ports = Ports::Random,
            other => d.err(
                sp(p),
                format!("{field}.ports"),
                format!("unknown port assignment `{other}` (known: preserve, random)"),
            ),
        }
    }
    if let Some(r) = &b.port_range {
        k.port_range = port_range(d, r, field);
    }
    if let Some(t) = &b.udp_timeout {
        if !(1..=3600).contains(t.get_ref()) {
            d.err(
                sp(t),
                format!("{field}.udp_timeout"),
                "must be 1-3600 seconds",
            );
        }
        k.udp_timeout = Some(*t.get_ref());
    }
    for c in &b.block {
        let v = c.get_ref();
        match (v.parse::<Block>(), v.parse::<Filter>()) {
            (Ok(x), _) => k.add_block(x),
            (_, Ok(x)) => k.add_filter(x),
            (_, Err(why)) if v.contains(':') => d.err(sp(c), format!("{field}.block"), why),
            _ => d.err(
                sp(c),
                format!("{field}.block"),
                format!(
                    "unknown packet class `{v}` (known: {}; or a port or protocol: tcp:443, udp:1701, proto:47)",
                    known::<Block>()
                ),
            ),
        }
    }
    if let Some(m) = &b.mss_clamp {
        if !(536..=9000).contains(m.get_ref()) {
            d.err(
                sp(m),
                format!("{field}.mss_clamp"),
                "an MSS of 536-9000 bytes",
            );
        }
        k.mss_clamp = Some(*m.get_ref());
    }
    forwarding(d, b, field, &mut k);
    k
}

/// `port_range = "20000-29999"`.
pub(super) fn port_range(
    d: &mut Diags<'_>,
    r: &Spanned<String>,
    field: &str,
) -> Option<(u16, u16)> {
    let parsed = r
        .get_ref()
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)));
    match parsed {
        Some((a, z)) if 1024 <= a && a <= z => Some((a, z)),
        _ => {
            d.err(
                sp(r),
                format!("{field}.port_range"),
                format!(
                    "`{}` is not a port range like \"20000-29999\" (from 1024 up)",
                    r.get_ref()
                ),
            );
            None
        }
    }
}

/// Loss, hairpinning and the IKE forwarding it applies to.
fn forwarding(d: &mut Diags<'_>, b: &BehaviourSpec, field: &str, k: &mut Knobs) {
    if let Some(l) = &b.loss {
        if *l.get_ref() > 100 {
            d.err(sp(l), format!("{field}.loss"), "a percentage: 0-100");
        }
        k.loss = *l.get_ref();
    }
    if let Some(h) = &b.hairpin {
        k.hairpin = *h.get_ref();
        if k.hairpin && b.forward_ike_to.is_none() {
            d.err(
                sp(h),
                format!("{field}.hairpin"),
                "hairpinning applies to a forwarding: set `forward_ike_to` too",
            );
        }
    }
    if let Some(a) = &b.forward_ike_to {
        k.forward_ike_to = d.addr(a, &format!("{field}.forward_ike_to"));
    }
    if let Some(a) = &b.forward_esp_to {
        k.forward_esp_to = d.addr(a, &format!("{field}.forward_esp_to"));
    }
}

/// The `behaviour` knobs an axis value of `matrix.behaviour.<node>.<knob>`
/// stands for (`"off"`: none), checked like the file's own; `None` after
/// reporting why not.
pub(super) fn axis_knobs(
    d: &mut Diags<'_>,
    knob: &str,
    v: &Spanned<String>,
    field: &str,
) -> Option<Knobs> {
    let (s, span) = (v.get_ref(), sp(v));
    let mut b = BehaviourSpec::default();
    let text = || Some(Spanned::new(span.clone(), s.clone()));
    let at = span.clone();
    let number = |d: &mut Diags<'_>, what: &str| -> Option<u32> {
        let n = s.parse().ok();
        if n.is_none() {
            d.err(
                at.clone(),
                format!("{field}.{knob}"),
                format!("`{s}` is not {what} or \"off\""),
            );
        }
        n
    };
    match knob {
        _ if s == "off" => {}
        "mss_clamp" => {
            let n = number(d, "an MSS in bytes")?;
            b.mss_clamp = Some(Spanned::new(span, u16::try_from(n).unwrap_or(u16::MAX)));
        }
        "loss" => {
            let n = number(d, "a percentage")?;
            b.loss = Some(Spanned::new(span, u8::try_from(n).unwrap_or(u8::MAX)));
        }
        "udp_timeout" => b.udp_timeout = Some(Spanned::new(span, number(d, "seconds")?)),
        "forward_esp_to" => b.forward_esp_to = text(),
        "port_range" => b.port_range = text(),
        "ports" => b.ports = text(),
        "block" => {
            let one = |x: &str| Spanned::new(span.clone(), x.trim().to_string());
            b.block = s.split(',').map(one).collect();
        }
        other => {
            let msg = format!("`{other}` cannot be an axis (known: mss_clamp, forward_esp_to, block, loss, udp_timeout, port_range, ports)");
            d.err(span, field, msg);
            return None;
        }
    }
    Some(nat_knobs(d, &b, field))
}

/// Lay the file's knobs over a profile's preset (`ports_set`: the file
/// names its port assignment, which then wins either way).
pub(super) fn merge(base: &mut Knobs, file: &Knobs, ports_set: bool) {
    if ports_set {
        base.ports = file.ports;
    }
    base.port_range = file.port_range.or(base.port_range);
    base.udp_timeout = file.udp_timeout.or(base.udp_timeout);
    for b in &file.block {
        base.add_block(*b);
    }
    if file.loss > 0 {
        base.loss = file.loss;
    }
    base.forward_ike_to = file.forward_ike_to.or(base.forward_ike_to);
    base.forward_esp_to = file.forward_esp_to.or(base.forward_esp_to);
    base.mss_clamp = file.mss_clamp.or(base.mss_clamp);
    for f in &file.filters {
        base.add_filter(*f);
    }
    base.hairpin |= file.hairpin;
    base.prefix_map = file.prefix_map.or(base.prefix_map);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded_and_explicit() {
        assert_eq!(duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(duration("5").is_err());
        assert!(duration("0s").is_err());
        assert!(duration("61s").is_err());
        assert_eq!(interval("off"), Ok(None));
        assert_eq!(interval("2s"), Ok(Some(2)));
        assert!(interval("1500ms").is_err());
    }
}
