//! pcap files: one per interface, `node-iface.pcap`, raw IPv4 link type
//! (the capture sockets deliver packets without link-layer headers).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

use super::{Captured, SNAPLEN};

/// Write the kept frames of every interface into `dir`; returns the files.
pub fn write(captured: &Captured, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for (node, nf) in &captured.nodes {
        let names = &captured.names[node];
        let mut writers: BTreeMap<u32, PcapWriter<BufWriter<File>>> = BTreeMap::new();
        // Every interface that saw traffic gets a file, even if empty of kept frames.
        let ifaces: std::collections::BTreeSet<u32> =
            nf.counts.keys().map(|(i, _, _)| *i).collect();
        for idx in ifaces {
            let name = names
                .get(&idx)
                .cloned()
                .unwrap_or_else(|| format!("if{idx}"));
            let path = dir.join(format!("{node}-{name}.pcap"));
            let header = PcapHeader {
                datalink: DataLink::RAW,
                snaplen: SNAPLEN as u32,
                ..Default::default()
            };
            let w = PcapWriter::with_header(BufWriter::new(File::create(&path)?), header)
                .map_err(std::io::Error::other)?;
            writers.insert(idx, w);
            files.push(path);
        }
        for f in &nf.frames {
            if let Some(w) = writers.get_mut(&f.ifindex) {
                w.write_packet(&PcapPacket::new(f.ts, f.len, &f.data))
                    .map_err(std::io::Error::other)?;
            }
        }
    }
    Ok(files)
}
