//! The fixed IKE header (RFC 7296 §3.1, RFC 2408 §3.1) of a captured
//! packet: which exchange a message belongs to, request or response, and
//! its message ID, for the ladder. Only the header is read: SPIs and
//! payloads (nonces, key exchange data, encrypted parts) are not kept.

use serde::{Deserialize, Serialize};

/// An IKE exchange type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Exchange {
    /// IKEv2 34.
    IkeSaInit,
    /// IKEv2 35.
    IkeAuth,
    /// IKEv2 36.
    CreateChildSa,
    /// IKEv2 37.
    Informational,
    /// IKEv1 2: Main Mode (Identity Protection).
    MainMode,
    /// IKEv1 4: Aggressive Mode.
    AggressiveMode,
    /// IKEv1 5: Informational.
    InformationalV1,
    /// IKEv1 32: Quick Mode.
    QuickMode,
    /// IKEv1 6 or IKEv1 Mode Config's 6 (Transaction).
    Transaction,
    /// Any other number.
    Other(u8),
}

impl Exchange {
    fn of(version: u8, n: u8) -> Self {
        match (version, n) {
            (2, 34) => Exchange::IkeSaInit,
            (2, 35) => Exchange::IkeAuth,
            (2, 36) => Exchange::CreateChildSa,
            (2, 37) => Exchange::Informational,
            (1, 2) => Exchange::MainMode,
            (1, 4) => Exchange::AggressiveMode,
            (1, 5) => Exchange::InformationalV1,
            (1, 6) => Exchange::Transaction,
            (1, 32) => Exchange::QuickMode,
            (_, n) => Exchange::Other(n),
        }
    }
}

impl std::fmt::Display for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Exchange::IkeSaInit => "IKE_SA_INIT",
            Exchange::IkeAuth => "IKE_AUTH",
            Exchange::CreateChildSa => "CREATE_CHILD_SA",
            Exchange::Informational => "INFORMATIONAL",
            Exchange::MainMode => "Main Mode",
            Exchange::AggressiveMode => "Aggressive Mode",
            Exchange::InformationalV1 => "Informational",
            Exchange::Transaction => "Transaction",
            Exchange::QuickMode => "Quick Mode",
            Exchange::Other(n) => return write!(f, "exchange {n}"),
        };
        f.write_str(s)
    }
}

/// What the ladder shows of one IKE message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IkeMessage {
    /// Major version (1 or 2).
    pub version: u8,
    /// The exchange.
    pub exchange: Exchange,
    /// IKEv2's R flag; IKEv1 headers do not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<bool>,
    /// Message ID.
    pub msg_id: u32,
    /// An IKEv2 fragment (RFC 7383): its number and the total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragment: Option<(u16, u16)>,
}

impl std::fmt::Display for IkeMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.exchange)?;
        match self.response {
            Some(true) => f.write_str(" response")?,
            Some(false) => f.write_str(" request")?,
            None => {}
        }
        write!(f, " #{}", self.msg_id)?;
        if let Some((n, t)) = self.fragment {
            write!(f, " (fragment {n}/{t})")?;
        }
        Ok(())
    }
}

/// IKEv2's payload type of an Encrypted Fragment payload.
const SKF: u8 = 53;

/// Read the IKE header of a UDP payload on port 500 or 4500. On 4500 the
/// header follows the four-zero non-ESP marker (RFC 3948); a payload of
/// one 0xff byte (a keepalive) or one starting with a non-zero SPI (ESP
/// in UDP) is no IKE message.
pub fn parse(udp_payload: &[u8], port_4500: bool) -> Option<IkeMessage> {
    let ike = if port_4500 {
        udp_payload.strip_prefix(&[0, 0, 0, 0])?
    } else {
        udp_payload
    };
    let h = ike.get(..28)?;
    let version = h[17] >> 4;
    if !(1..=2).contains(&version) {
        return None;
    }
    let (next, exchange, flags) = (h[16], h[18], h[19]);
    let msg_id = u32::from_be_bytes([h[20], h[21], h[22], h[23]]);
    let fragment = (version == 2 && next == SKF)
        .then(|| {
            // The SKF payload's generic header, then fragment number and total.
            let body = ike.get(32..36)?;
            Some((
                u16::from_be_bytes([body[0], body[1]]),
                u16::from_be_bytes([body[2], body[3]]),
            ))
        })
        .flatten();
    Some(IkeMessage {
        version,
        exchange: Exchange::of(version, exchange),
        response: (version == 2).then_some(flags & 0x20 != 0),
        msg_id,
        fragment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(next: u8, version: u8, exchange: u8, flags: u8, id: u32) -> Vec<u8> {
        let mut h = vec![0x11; 16];
        h.extend([next, version << 4, exchange, flags]);
        h.extend(id.to_be_bytes());
        h.extend(28u32.to_be_bytes());
        h
    }

    #[test]
    fn ikev2_request_and_response_on_500() {
        let m = parse(&header(33, 2, 34, 0x08, 0), false).unwrap();
        assert_eq!(m.to_string(), "IKE_SA_INIT request #0");
        let m = parse(&header(46, 2, 35, 0x20, 1), false).unwrap();
        assert_eq!(m.to_string(), "IKE_AUTH response #1");
    }

    #[test]
    fn on_4500_only_after_the_non_esp_marker() {
        let mut p = vec![0, 0, 0, 0];
        p.extend(header(46, 2, 37, 0x08, 7));
        assert_eq!(
            parse(&p, true).unwrap().to_string(),
            "INFORMATIONAL request #7"
        );
        assert_eq!(parse(&[0xff], true), None, "keepalive");
        let esp = [0xc0, 0x01, 0x02, 0x03, 0, 0, 0, 1].repeat(5);
        assert_eq!(parse(&esp, true), None, "ESP in UDP");
    }

    #[test]
    fn ikev1_has_no_direction_and_v2_fragments_are_numbered() {
        let m = parse(&header(1, 1, 2, 0, 0), false).unwrap();
        assert_eq!(m.to_string(), "Main Mode #0");
        let mut p = header(SKF, 2, 35, 0x08, 1);
        p.extend([46, 0, 0, 8, 0, 2, 0, 3]);
        assert_eq!(
            parse(&p, false).unwrap().to_string(),
            "IKE_AUTH request #1 (fragment 2/3)"
        );
        assert_eq!(parse(&header(1, 3, 2, 0, 0), false), None, "version 3");
    }
}
