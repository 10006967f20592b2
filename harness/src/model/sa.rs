//! What an endpoint's daemon reports: its IKE and CHILD SAs, normalized the
//! same way for every stack, and the initiator's account of the exchange.

use serde::{Deserialize, Serialize};
use serde_with::{DeserializeFromStr, SerializeDisplay};
use strum::{Display, EnumString};

use super::cell::Proto;
use super::kinds::Mode;

/// The state of an IKE or CHILD SA, in strongSwan's vocabulary (every
/// driver maps its own onto it); a state vpnlab has no name for is kept as
/// the daemon wrote it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, SerializeDisplay, DeserializeFromStr, Display, EnumString,
)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum SaState {
    /// Created, nothing sent yet.
    Created,
    /// IKE: the exchange is under way.
    Connecting,
    /// IKE: authenticated and usable.
    Established,
    /// IKE: waiting for the peer (a passive responder).
    Passive,
    /// Being rekeyed.
    Rekeying,
    /// Replaced by a rekeyed SA.
    Rekeyed,
    /// Being deleted.
    Deleting,
    /// Being destroyed.
    Destroying,
    /// CHILD: a trap policy is installed, no SA yet.
    Routed,
    /// CHILD: being installed.
    Installing,
    /// CHILD: installed in the backend, traffic can flow.
    Installed,
    /// CHILD: moving to new addresses.
    Updating,
    /// CHILD: a failed exchange is retried.
    Retrying,
    /// CHILD: deleted, not yet destroyed.
    Deleted,
    /// Any other state, as the daemon wrote it (libreswan's `MAIN_I1`...).
    #[strum(default, to_string = "{0}")]
    Other(String),
}

impl Default for SaState {
    fn default() -> Self {
        SaState::Other(String::new())
    }
}

/// IKE SA as observed, normalized.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct IkeSa {
    /// e.g. `ESTABLISHED`, `CONNECTING`.
    pub state: SaState,
    /// 1 or 2.
    pub version: u8,
    /// Local address:port (non-IKE ports normalized to `ephemeral`).
    pub local: String,
    /// Remote address:port.
    pub remote: String,
    /// Remote address:port as reported, before normalization (not in
    /// snapshots; `peer-moved` waits compare it).
    #[serde(skip)]
    pub remote_raw: String,
    /// This end is behind NAT.
    pub nat_local: bool,
    /// The peer is behind NAT.
    pub nat_remote: bool,
    /// NAT faked to force UDP encapsulation.
    pub nat_fake: bool,
    /// The virtual IP this end was assigned (a road warrior's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_ip: Option<String>,
    /// The negotiated algorithms (`AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384`),
    /// shown where the file sets the proposals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<String>,
}

impl IkeSa {
    /// Whether the SA is established.
    pub fn is_up(&self) -> bool {
        self.state == SaState::Established
    }

    /// The peer's true address:port (not the snapshot label, which folds
    /// NAT-chosen ports into `ephemeral`).
    pub fn true_remote(&self) -> &str {
        if self.remote_raw.is_empty() {
            &self.remote
        } else {
            &self.remote_raw
        }
    }
}

/// CHILD SA as observed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChildSa {
    /// e.g. `INSTALLED`.
    pub state: SaState,
    /// Tunnel or transport.
    pub mode: Mode,
    /// ESP or AH.
    pub protocol: Proto,
    /// ESP in UDP, both directions.
    pub udp_encap: bool,
    /// Set when only one direction is ESP in UDP (`outbound only` or
    /// `inbound only`): the two ends disagreed about NAT traversal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_encap_oneway: Option<String>,
    /// Local traffic selectors.
    pub local_ts: Vec<String>,
    /// Remote traffic selectors.
    pub remote_ts: Vec<String>,
    /// The negotiated algorithms, where the file sets the proposals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<String>,
}

impl ChildSa {
    /// Whether the SA is installed.
    pub fn is_up(&self) -> bool {
        self.state == SaState::Installed
    }
}

impl Default for ChildSa {
    fn default() -> Self {
        ChildSa {
            state: SaState::default(),
            mode: Mode::Tunnel,
            protocol: Proto::Esp,
            udp_encap: false,
            udp_encap_oneway: None,
            local_ts: vec![],
            remote_ts: vec![],
            algorithms: None,
        }
    }
}

/// What one endpoint reports after the exchange.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct EndpointState {
    /// The IKE SA, if any exists.
    pub ike: Option<IkeSa>,
    /// The CHILD SA, if one is installed.
    pub child: Option<ChildSa>,
    /// A responder with several peers: the SAs with the others, sorted by
    /// remote address:port (the first pair is `ike`/`child`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<EndpointState>,
    /// Which SAs exist, by the daemon's ids (not in snapshots: they
    /// change with every rekey, which is what `ike` steps look for).
    #[serde(skip)]
    pub ids: SaIds,
}

/// The daemon's ids of an endpoint's SAs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaIds {
    /// Every IKE SA, established or not.
    pub ike: Vec<String>,
    /// Every installed CHILD SA.
    pub children: Vec<String>,
}

impl EndpointState {
    /// An established IKE SA with an installed CHILD SA.
    pub fn is_up(&self) -> bool {
        self.ike.as_ref().is_some_and(IkeSa::is_up)
            && self.child.as_ref().is_some_and(ChildSa::is_up)
    }
}

/// Result of asking the initiator to bring the tunnel up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Initiation {
    /// The daemon reported success.
    pub success: bool,
    /// Notable, normalized facts from the daemon's log of the exchange
    /// (NAT detection, retransmits, why it gave up).
    pub log: Vec<String>,
    /// The daemon's error message on failure.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_keep_the_daemons_words() {
        assert_eq!("ESTABLISHED".parse::<SaState>(), Ok(SaState::Established));
        assert_eq!(SaState::Installed.to_string(), "INSTALLED");
        let other: SaState = "MAIN_I1".parse().unwrap();
        assert_eq!(other, SaState::Other("MAIN_I1".into()));
        assert_eq!(other.to_string(), "MAIN_I1");
        assert_eq!(serde_json::to_value(&other).unwrap(), "MAIN_I1");
        assert_eq!(SaState::default().to_string(), "");
    }
}
