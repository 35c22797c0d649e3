//! Certificates for the test harness's TLS server: a CA made for the test
//! run, a server certificate for `localhost` (its only name: no IP
//! address) and a client certificate whose common name is a role, all
//! signed by that CA, as PEM files.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn new_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

enum Kind {
    Ca,
    Server(&'static str),
    Client,
}

fn make_cert(
    cn: &str,
    key: &PKey<Private>,
    kind: Kind,
    issuer: Option<(&X509, &PKey<Private>)>,
    serial: u32,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = Asn1Integer::from_bn(&BigNum::from_u32(serial).unwrap()).unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    match issuer {
        Some((ca, _)) => b.set_issuer_name(ca.subject_name()).unwrap(),
        None => b.set_issuer_name(&name).unwrap(),
    }
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    match kind {
        Kind::Ca => {
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .unwrap(),
            )
            .unwrap();
        }
        Kind::Server(dns) => {
            let san = SubjectAlternativeName::new()
                .dns(dns)
                .build(&b.x509v3_context(issuer.map(|(c, _)| c.as_ref()), None))
                .unwrap();
            b.append_extension(san).unwrap();
            b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
                .unwrap();
        }
        Kind::Client => {
            b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap())
                .unwrap();
        }
    }
    let signer = issuer.map_or(key, |(_, k)| k);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

fn write(path: &Path, bytes: &[u8], mode: u32) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes a CA, a server certificate for `host` and a client certificate
/// for the role `client_cn` into `dir` (keys mode 0600).
pub fn make(dir: &Path, host: &'static str, client_cn: &str) -> Certs {
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = new_key();
    let ca = make_cert("git-hop test CA", &ca_key, Kind::Ca, None, 1);
    let server_key = new_key();
    let server = make_cert(
        host,
        &server_key,
        Kind::Server(host),
        Some((&ca, &ca_key)),
        2,
    );
    let client_key = new_key();
    let client = make_cert(
        client_cn,
        &client_key,
        Kind::Client,
        Some((&ca, &ca_key)),
        3,
    );
    let certs = Certs {
        ca: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    };
    write(&certs.ca, &ca.to_pem().unwrap(), 0o644);
    write(&certs.server_cert, &server.to_pem().unwrap(), 0o644);
    write(
        &certs.server_key,
        &server_key.private_key_to_pem_pkcs8().unwrap(),
        0o600,
    );
    write(&certs.client_cert, &client.to_pem().unwrap(), 0o644);
    write(
        &certs.client_key,
        &client_key.private_key_to_pem_pkcs8().unwrap(),
        0o600,
    );
    certs
}
