//! `labctl token create|list|revoke`.

use std::collections::BTreeMap;
use std::time::Duration;

use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::{CreateTokenRequest, ListTokensRequest, RevokeTokenRequest};
use serde::Serialize;
use tonic::transport::Channel;

use crate::failure::{from_status, Failure};
use crate::output::{self, Format};

/// Parses `k=v` label arguments and checks them as the coordinator will (reserved keys such as
/// `node` are refused).
pub fn parse_labels(args: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let labels = args
        .iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| Failure::Usage(format!("label '{a}' is not KEY=VALUE")))
        })
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    lab_proto::labels::validate(&labels).map_err(|e| Failure::Usage(e.to_string()))?;
    Ok(labels)
}

/// `labctl token create`: prints only the token.
pub async fn create(
    mut client: OperatorServiceClient<Channel>,
    ttl: Duration,
    name: Option<String>,
    labels: &[String],
) -> anyhow::Result<()> {
    let resp = client
        .create_token(CreateTokenRequest {
            ttl_seconds: ttl.as_secs().max(1),
            node_name: name.unwrap_or_default(),
            labels: parse_labels(labels)?.into_iter().collect(),
        })
        .await
        .map_err(from_status)?
        .into_inner();
    crate::outln!("{}", resp.token)?;
    Ok(())
}

#[derive(Serialize)]
pub(crate) struct TokenView {
    pub(crate) id: String,
    pub(crate) node_name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) expires: Option<String>,
    pub(crate) used: Option<String>,
    pub(crate) used_by: String,
    pub(crate) created_by: String,
    pub(crate) revoked: Option<String>,
}

/// `labctl token list`.
pub async fn list(
    mut client: OperatorServiceClient<Channel>,
    format: Format,
) -> anyhow::Result<()> {
    let tokens = client
        .list_tokens(ListTokensRequest {})
        .await
        .map_err(from_status)?
        .into_inner()
        .tokens;
    let views: Vec<TokenView> = tokens
        .into_iter()
        .map(|t| TokenView {
            id: t.token_id,
            node_name: t.node_name,
            labels: t.labels.into_iter().collect(),
            expires: output::time(t.expires_unix_ms),
            used: output::time(t.used_unix_ms),
            used_by: t.used_by,
            created_by: t.created_by,
            revoked: output::time(t.revoked_unix_ms),
        })
        .collect();
    if output::print_list(format, &views, |v| v.id.clone())? {
        return Ok(());
    }
    crate::outln!("{}", table(&views).fit(format.fit()))?;
    Ok(())
}

/// The `labctl token list` table. Pure.
pub(crate) fn table(tokens: &[TokenView]) -> output::Table<6> {
    let mut table = output::table(["ID", "NODE", "EXPIRES", "USED BY", "CREATED BY", "REVOKED"]);
    for t in tokens {
        table.row([
            t.id.clone(),
            t.node_name.clone(),
            t.expires.clone().unwrap_or_default(),
            t.used_by.clone(),
            t.created_by.clone(),
            t.revoked.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table
}

/// `labctl token revoke ID`.
pub async fn revoke(mut client: OperatorServiceClient<Channel>, id: String) -> anyhow::Result<()> {
    client
        .revoke_token(RevokeTokenRequest {
            token_id: id.clone(),
        })
        .await
        .map_err(from_status)?;
    crate::outln!("token {id} revoked")?;
    Ok(())
}
