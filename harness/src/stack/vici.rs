//! Typed VICI messages (strongSwan's control protocol) for rsvici.
//!
//! VICI encodes values as byte strings, so responses are deserialized into
//! typed structs with `String` fields (not `serde_json::Value`), with `Option`
//! for keys charon leaves out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Generic command reply.
#[derive(Debug, Deserialize)]
pub struct Reply {
    /// `yes`/`no`.
    pub success: bool,
    /// Error text on failure.
    pub errmsg: Option<String>,
}

/// `version` reply.
#[derive(Debug, Deserialize)]
pub struct Version {
    /// Daemon name (`charon`).
    pub daemon: String,
    /// e.g. `5.9.8`.
    pub version: String,
}

/// An authentication round (`local`/`remote` sections of `load-conn`).
#[derive(Debug, Serialize)]
pub struct AuthSection {
    /// `psk` or `pubkey`.
    pub auth: String,
    /// IKE identity.
    pub id: String,
}

/// A CHILD_SA config.
#[derive(Debug, Serialize)]
pub struct ChildConfig {
    /// Local traffic selectors.
    pub local_ts: Vec<String>,
    /// Remote traffic selectors.
    pub remote_ts: Vec<String>,
    /// `tunnel` or `transport`.
    pub mode: String,
    /// What to do when the config is loaded (`none`: wait for `initiate`).
    pub start_action: String,
    /// AH proposals (the CHILD SA is AH instead of ESP when set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ah_proposals: Option<Vec<String>>,
    /// ESP proposals (default: charon's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub esp_proposals: Option<Vec<String>>,
    /// When to rekey, e.g. `2s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rekey_time: Option<String>,
    /// Random jitter subtracted from it (`0s`: exactly then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rand_time: Option<String>,
}

/// An IKE_SA config as `load-conn` takes it (swanctl.conf key names).
#[derive(Debug, Serialize)]
pub struct ConnConfig {
    /// `1` or `2`.
    pub version: String,
    /// Local addresses (`%any`).
    pub local_addrs: Vec<String>,
    /// Remote addresses.
    pub remote_addrs: Vec<String>,
    /// Force UDP encapsulation.
    pub encap: String,
    /// MOBIKE (off: IKE stays on port 500 unless NAT is detected).
    pub mobike: String,
    /// Dead peer detection interval (`0s`: off).
    pub dpd_delay: String,
    /// IKE fragmentation (`yes`/`no`).
    pub fragmentation: String,
    /// When to send our certificate (`always` with certificates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_cert: Option<String>,
    /// Local authentication round.
    pub local: AuthSection,
    /// Remote authentication round.
    pub remote: AuthSection,
    /// IKE proposals (default: charon's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposals: Option<Vec<String>>,
    /// When to rekey the IKE SA, e.g. `30s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rekey_time: Option<String>,
    /// Random jitter subtracted from it (`0s`: exactly then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rand_time: Option<String>,
    /// Virtual IPs to request (`0.0.0.0`: any IPv4 address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vips: Option<Vec<String>>,
    /// Pools to assign virtual IPs from, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pools: Option<Vec<String>>,
    /// CHILD_SA configs by name.
    pub children: BTreeMap<String, ChildConfig>,
}

/// One pool of a `load-pool` request.
#[derive(Debug, Serialize)]
pub struct Pool {
    /// Its addresses, as a prefix.
    pub addrs: String,
}

/// `load-shared` request.
#[derive(Debug, Serialize)]
pub struct SharedKey {
    /// `IKE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The secret.
    pub data: String,
    /// Identities the key belongs to.
    pub owners: Vec<String>,
}

/// `initiate` request.
#[derive(Debug, Serialize)]
pub struct Initiate {
    /// CHILD_SA config to initiate.
    pub child: String,
    /// IKE_SA config it belongs to.
    pub ike: String,
    /// Milliseconds charon waits before returning (0 = until done).
    pub timeout: String,
    /// Log level of the streamed `control-log` events.
    pub loglevel: String,
}

/// One `control-log` event.
#[derive(Debug, Deserialize)]
pub struct ControlLog {
    /// The log message.
    pub msg: String,
}

/// `list-sas` request (no filter).
#[derive(Debug, Serialize)]
pub struct ListSas {
    /// `yes` skips SAs busy with an exchange; vpnlab sends `no`.
    pub noblock: String,
}

/// `terminate` request.
#[derive(Debug, Serialize)]
pub struct Terminate {
    /// IKE_SA config whose SAs to delete.
    pub ike: String,
    /// Milliseconds to wait for the deletion (0: until done).
    pub timeout: String,
}

/// `rekey` request: the CHILD_SAs of `child`, or the IKE_SAs of `ike`.
#[derive(Debug, Serialize)]
pub struct Rekey {
    /// CHILD_SA config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child: Option<String>,
    /// IKE_SA config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ike: Option<String>,
    /// `yes`: reauthenticate the IKE SA instead of rekeying it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reauth: Option<String>,
}

/// An IKE_SA as `list-sas` reports it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IkeSa {
    /// charon's id of the SA.
    pub uniqueid: Option<String>,
    /// e.g. `ESTABLISHED`.
    pub state: String,
    /// IKE version.
    pub version: String,
    /// Local address.
    pub local_host: Option<String>,
    /// Local port.
    pub local_port: Option<String>,
    /// Remote address.
    pub remote_host: Option<String>,
    /// Remote port.
    pub remote_port: Option<String>,
    /// `yes` when this end is behind NAT.
    pub nat_local: Option<String>,
    /// `yes` when the peer is behind NAT.
    pub nat_remote: Option<String>,
    /// `yes` when NAT is faked.
    pub nat_fake: Option<String>,
    /// Virtual IPs assigned to this end.
    pub local_vips: Option<Vec<String>>,
    /// Negotiated encryption algorithm, e.g. `AES_GCM_16`.
    pub encr_alg: Option<String>,
    /// Its key size in bits.
    pub encr_keysize: Option<String>,
    /// Negotiated integrity algorithm.
    pub integ_alg: Option<String>,
    /// Negotiated PRF.
    pub prf_alg: Option<String>,
    /// Negotiated DH group.
    pub dh_group: Option<String>,
    /// CHILD_SAs by unique name.
    pub child_sas: Option<BTreeMap<String, ChildSa>>,
}

/// A CHILD_SA as `list-sas` reports it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ChildSa {
    /// charon's id of the SA.
    pub uniqueid: Option<String>,
    /// Negotiated encryption algorithm.
    pub encr_alg: Option<String>,
    /// Its key size in bits.
    pub encr_keysize: Option<String>,
    /// Negotiated integrity algorithm.
    pub integ_alg: Option<String>,
    /// DH group of PFS, if any.
    pub dh_group: Option<String>,
    /// e.g. `INSTALLED`.
    pub state: String,
    /// `TUNNEL`/`TRANSPORT`.
    pub mode: Option<String>,
    /// `ESP`/`AH`.
    pub protocol: Option<String>,
    /// `yes` when ESP is UDP-encapsulated.
    pub encap: Option<String>,
    /// Local traffic selectors.
    pub local_ts: Option<Vec<String>>,
    /// Remote traffic selectors.
    pub remote_ts: Option<Vec<String>>,
}

/// `load-cert` request (reply: [`Reply`]).
#[derive(Debug, Serialize)]
pub struct LoadCert {
    /// `X509`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `CA` for a trust anchor, `NONE` for an end-entity certificate.
    pub flag: String,
    /// The certificate, DER. `serde_bytes` makes it one VICI value: a plain
    /// `Vec<u8>` would go out as a list of decimal strings. At most 65535
    /// bytes (16-bit VICI length).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// `load-key` request (reply: [`Reply`], plus the key's `id`, unused).
#[derive(Debug, Serialize)]
pub struct LoadKey {
    /// `any` (charon detects the format, e.g. PKCS#8) or `ecdsa`, `rsa`, ….
    #[serde(rename = "type")]
    pub kind: String,
    /// The private key, DER, as one VICI value (see [`LoadCert::data`]).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}
