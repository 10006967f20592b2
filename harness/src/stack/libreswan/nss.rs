//! pluto's NSS database: where libreswan keeps private keys and
//! certificates. An empty one is enough for pre-shared keys; with
//! certificates, the run's test CA goes in as a trusted CA and the
//! endpoint's certificate and key as a PKCS#12 bundle, as libreswan's own
//! documentation does it (`certutil -A -t CT,,`, `pk12util -i`).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::error::StackError;
use crate::stack::pki;

/// The nickname of the endpoint's certificate in the database
/// (`leftcert=`).
pub const CERT_NICK: &str = "vpnlab";
/// The test CA's nickname.
const CA_NICK: &str = "vpnlab test CA";
/// The PKCS#12 bundle's password: it lives for seconds in the endpoint's
/// private directory and is removed once imported.
const P12_PASS: &str = "vpnlab";
/// Upper bound for one NSS or openssl tool run (a second under emulation).
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the empty NSS database could not be made.
#[derive(Debug, Clone)]
enum NssError {
    NoCertutil,
    Failed(String),
}

/// The empty NSS database every pluto of this run starts from.
static TEMPLATE: tokio::sync::OnceCell<Result<PathBuf, NssError>> =
    tokio::sync::OnceCell::const_new();

/// Create an empty NSS database under `root` with certutil.
async fn empty_db(root: &Path) -> Result<PathBuf, NssError> {
    let dir = root.join("libreswan-nss");
    std::fs::create_dir_all(&dir).map_err(|e| NssError::Failed(e.to_string()))?;
    let out = tokio::process::Command::new("certutil")
        .arg("-N")
        .arg("-d")
        .arg(format!("sql:{}", dir.display()))
        .arg("--empty-password")
        .stdin(Stdio::null())
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => Ok(dir),
        Ok(o) => Err(NssError::Failed(
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(NssError::NoCertutil),
        Err(e) => Err(NssError::Failed(e.to_string())),
    }
}

/// An endpoint's NSS database at `db`, made from the run's template
/// (created once under `root`: certutil takes a second under emulation).
pub struct Db<'a> {
    /// The endpoint's node, for errors.
    pub node: &'a str,
    /// The database directory.
    pub db: PathBuf,
}

impl Db<'_> {
    fn err(&self, request: &str, detail: impl ToString) -> StackError {
        super::control_err(self.node, request, detail)
    }

    fn cfg_err(&self, path: &Path) -> impl Fn(std::io::Error) -> StackError {
        let (node, path) = (self.node.to_string(), path.to_path_buf());
        move |source| StackError::Config {
            node: node.clone(),
            path: path.clone(),
            source,
        }
    }

    /// Copy the run's empty database (made under `root` on first use).
    pub async fn create(&self, root: &Path) -> Result<(), StackError> {
        let template = match TEMPLATE.get_or_init(|| empty_db(root)).await {
            Ok(t) => t,
            Err(NssError::NoCertutil) => {
                return Err(StackError::Missing {
                    node: self.node.to_string(),
                    what: "certutil (creates pluto's NSS database)".into(),
                    install: "sudo apt-get install libnss3-tools".into(),
                })
            }
            Err(NssError::Failed(e)) => return Err(self.err("certutil -N", e)),
        };
        std::fs::create_dir_all(&self.db).map_err(self.cfg_err(&self.db))?;
        for f in std::fs::read_dir(template).map_err(self.cfg_err(template))? {
            let f = f.map_err(self.cfg_err(template))?;
            let to = self.db.join(f.file_name());
            std::fs::copy(f.path(), &to).map_err(self.cfg_err(&to))?;
        }
        Ok(())
    }

    /// Trust the run's test CA and import a certificate for `id` (at
    /// least `size` bytes, flawed as asked) with its key, as
    /// [`CERT_NICK`]. The PEM and
    /// PKCS#12 files are written next to the database and removed after.
    pub async fn import(
        &self,
        id: &str,
        size: Option<u32>,
        flaw: Option<pki::Flaw>,
    ) -> Result<(), StackError> {
        let ca = pki::run_ca().map_err(|e| self.err("the run's test CA", e))?;
        let issued = pki::issue(id, size.map(|s| s as usize), flaw)
            .map_err(|e| self.err("a certificate from the test PKI", e))?;
        let dir = self.db.parent().unwrap_or(&self.db).to_path_buf();
        let file = |name: &str, data: &[u8]| -> Result<PathBuf, StackError> {
            let path = dir.join(name);
            std::fs::write(&path, data).map_err(self.cfg_err(&path))?;
            Ok(path)
        };
        let ca_der = file("ca.der", ca.cert_der())?;
        let cert = file("cert.pem", pem("CERTIFICATE", &issued.cert_der).as_bytes())?;
        let key = file(
            "key.pem",
            pem("PRIVATE KEY", &issued.key_pkcs8_der).as_bytes(),
        )?;
        let p12 = dir.join("cert.p12");
        let sql = format!("sql:{}", self.db.display());
        let pass = format!("pass:{P12_PASS}");
        let steps = [
            (
                "certutil",
                args(&[
                    &"-A", &"-d", &sql, &"-n", &CA_NICK, &"-t", &"CT,,", &"-i", &ca_der,
                ]),
            ),
            (
                "openssl",
                args(&[
                    &"pkcs12",
                    &"-export",
                    &"-name",
                    &CERT_NICK,
                    &"-passout",
                    &pass,
                    &"-in",
                    &cert,
                    &"-inkey",
                    &key,
                    &"-out",
                    &p12,
                ]),
            ),
            (
                "pk12util",
                args(&[&"-d", &sql, &"-W", &P12_PASS, &"-i", &p12]),
            ),
        ];
        let mut result = Ok(());
        for (tool, args) in steps {
            result = self.tool(tool, &args).await;
            if result.is_err() {
                break;
            }
        }
        for f in [&ca_der, &cert, &key, &p12] {
            let _ = std::fs::remove_file(f);
        }
        result
    }

    /// Run one tool, bounded; an error quotes its output.
    async fn tool(&self, tool: &str, args: &[OsString]) -> Result<(), StackError> {
        let out = tokio::process::Command::new(tool)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(TOOL_TIMEOUT, out).await {
            Ok(Ok(o)) if o.status.success() => Ok(()),
            Ok(Ok(o)) => Err(self.err(
                tool,
                format!(
                    "{}: {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            )),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(StackError::Missing {
                node: self.node.to_string(),
                what: format!("{tool} (puts the test certificate into pluto's NSS database)"),
                install: "sudo apt-get install libnss3-tools openssl".into(),
            }),
            Ok(Err(e)) => Err(self.err(tool, e)),
            Err(_) => Err(self.err(tool, format!("no answer after {TOOL_TIMEOUT:?}"))),
        }
    }
}

/// A command line of strings and paths.
fn args(parts: &[&dyn AsRef<OsStr>]) -> Vec<OsString> {
    parts.iter().map(|p| p.as_ref().to_os_string()).collect()
}

/// DER as PEM (RFC 7468), which openssl's `pkcs12 -export` reads.
fn pem(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The database pluto would open holds the CA as trusted and the
    /// certificate with its private key, and nothing is left beside it.
    #[tokio::test]
    async fn import_puts_ca_cert_and_key_into_nss() {
        let root = std::env::temp_dir().join(format!("vpnlab-nss-test-{}", std::process::id()));
        let ep_dir = root.join("cell").join("carol");
        let db = Db {
            node: "carol",
            db: ep_dir.join("nss"),
        };
        db.create(&root).await.unwrap();
        db.import("C=CH, O=vpnlab, CN=carol", Some(2000), None)
            .await
            .unwrap();
        let sql = format!("sql:{}", db.db.display());
        let list = |args: &[&str]| {
            let out = std::process::Command::new("certutil")
                .args(args)
                .args(["-d", &sql])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let certs = list(&["-L"]);
        // "<nickname, padded>  <trust>": the trust has no spaces.
        let trust = |nick: &str| {
            certs.lines().find_map(|l| {
                let (name, trust) = l.trim_end().rsplit_once(' ')?;
                (name.trim() == nick).then(|| trust.to_string())
            })
        };
        assert_eq!(trust(CA_NICK).as_deref(), Some("CT,,"), "{certs}");
        assert_eq!(trust(CERT_NICK).as_deref(), Some("u,u,u"), "{certs}");
        assert!(list(&["-K"]).contains(CERT_NICK), "no private key");
        let left: Vec<_> = std::fs::read_dir(&ep_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["nss"], "temporary files left");
        std::fs::remove_dir_all(&root).ok();
    }
}
