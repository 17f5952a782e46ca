//! InfluxDB 2, as Flagger's `influxdb.go` queries it through the official
//! Go client: `POST <address>/api/v2/query?org=<org>` with
//! `Authorization: Token <token>`, `Content-Type: application/json` and
//! the body `{"dialect": {...}, "query": <Flux>, "type": "flux"}` (the
//! client's default dialect: annotations `datatype`, `group`, `default`,
//! a header row, comma-separated), within 15 seconds. With a `secretRef`,
//! its `token` and `org` are required. The address is required. The
//! answer is annotated CSV; the value is the `_value` of the first
//! record.
//!
//! Deliberate differences: an answer without records is "no values
//! found" (Flagger's provider returns 0 with no error, which passes a
//! `max` check on no data at all); a `long` or `unsignedLong` value is
//! read as a number (Flagger's is an "invalid response"); several
//! records are an error rather than the first one's value.

use std::time::Duration;

use http::Method;
use serde_json::json;

use super::prometheus::MetricError;
use super::provider::{Outgoing, Source, several};

/// The Go client's query timeout in Flagger's provider.
const TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) fn request(src: &Source, query: &str) -> Result<Outgoing, MetricError> {
    let invalid = || {
        MetricError::Query(format!(
            "influxdb address {} is not a valid URL",
            src.address().unwrap_or_default()
        ))
    };
    let address = src.address().ok_or_else(invalid)?;
    let base = reqwest::Url::parse(address).map_err(|_| invalid())?;
    let (mut token, mut org) = (String::new(), String::new());
    if src.provider.secret_ref.is_some() {
        token = src.key("influxdb", "token").map_err(|_| {
            MetricError::Query(
                "influxdb credentials does not contain an authentication token".into(),
            )
        })?;
        org = src.key("influxdb", "org").map_err(|_| {
            MetricError::Query("influxdb credentials does not contain an organisation".into())
        })?;
    }
    let mut url = base;
    let path = format!("{}/api/v2/query", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    let url = format!("{url}?{}", super::provider::encode(&[("org", &org)]));
    let body = json!({
        "dialect": {
            "annotations": ["datatype", "group", "default"],
            "delimiter": ",",
            "header": true,
        },
        "query": query,
        "type": "flux",
    });
    Ok(Outgoing {
        method: Method::POST,
        url,
        headers: vec![
            ("authorization", format!("Token {token}"), true),
            ("content-type", "application/json".to_string(), false),
        ],
        body: Some(body.to_string().into_bytes()),
        timeout: TIMEOUT,
    })
}

/// A column of the current table.
#[derive(Default, Clone)]
struct Column {
    name: String,
    datatype: String,
    default: String,
}

pub(crate) fn parse(body: &str) -> Result<f64, MetricError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body.as_bytes());
    let mut columns: Vec<Column> = Vec::new();
    // Where the reader is: in a table's annotations, at its header row,
    // in its records, or in an error table.
    #[derive(PartialEq)]
    enum At {
        Records,
        Annotations,
        Header,
        Error,
    }
    let mut at = At::Records;
    let mut values = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| MetricError::Query(format!("error reading the answer: {e}")))?;
        if row.len() <= 1 {
            continue;
        }
        let first = &row[0];
        if first.starts_with('#') && at == At::Records {
            columns = vec![Column::default(); row.len() - 1];
            at = At::Annotations;
        }
        if columns.is_empty() {
            return Err(MetricError::Query(
                "parsing error, annotations not found".into(),
            ));
        }
        let cells = row.iter().skip(1);
        match first {
            "#datatype" => columns
                .iter_mut()
                .zip(cells)
                .for_each(|(c, d)| c.datatype = d.to_string()),
            "#default" => columns
                .iter_mut()
                .zip(cells)
                .for_each(|(c, d)| c.default = d.to_string()),
            "" if at == At::Annotations || at == At::Header => {
                if row.get(1) == Some("error") {
                    at = At::Error;
                } else {
                    columns
                        .iter_mut()
                        .zip(cells)
                        .for_each(|(c, n)| c.name = n.to_string());
                    at = At::Records;
                }
            }
            "" if at == At::Error => {
                let message = row
                    .get(1)
                    .filter(|m| !m.is_empty())
                    .unwrap_or("unknown query error");
                return Err(MetricError::Query(format!("query error: {message}")));
            }
            "" => {
                let Some(i) = columns.iter().position(|c| c.name == "_value") else {
                    return Err(MetricError::Query(
                        "invalid response: the records have no _value column".into(),
                    ));
                };
                let c = &columns[i];
                let text = row
                    .get(i + 1)
                    .filter(|t| !t.is_empty())
                    .unwrap_or(&c.default);
                if text.is_empty() {
                    values.push(None);
                    continue;
                }
                let v = match c.datatype.as_str() {
                    "double" | "long" | "unsignedLong" => text.parse::<f64>().map_err(|_| {
                        MetricError::Query(format!(
                            "invalid response: _value `{text}` is not a number"
                        ))
                    })?,
                    other => {
                        return Err(MetricError::Query(format!(
                            "invalid response: _value is of type {other}, not a number"
                        )));
                    }
                };
                values.push(Some(v));
            }
            _ => {}
        }
    }
    match values.as_slice() {
        [] | [None] => Err(MetricError::NoValues),
        [Some(v)] => Ok(*v),
        many => Err(several(many.len(), "records")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use canary_core::spec::types::{MetricTemplateProvider, SecretReference};

    use super::*;

    #[test]
    fn the_request_is_the_go_clients() {
        let p = MetricTemplateProvider {
            address: Some("http://influxdb.monitoring:8086".into()),
            secret_ref: Some(SecretReference {
                name: Some("influx".into()),
            }),
            ..Default::default()
        };
        let c: BTreeMap<String, Vec<u8>> = [("token", "t0k"), ("org", "my org")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        let src = Source {
            provider: &p,
            credentials: Some(&c),
            interval: Duration::from_secs(60),
            now_ms: 0,
        };
        let r = request(&src, "from(bucket: \"b\") |> range(start: -1m)").unwrap();
        assert_eq!(r.method, Method::POST);
        assert_eq!(
            r.url,
            "http://influxdb.monitoring:8086/api/v2/query?org=my+org"
        );
        assert_eq!(
            r.headers[0],
            ("authorization", "Token t0k".to_string(), true)
        );
        let body: serde_json::Value = serde_json::from_slice(r.body.as_ref().unwrap()).unwrap();
        assert_eq!(body["type"], "flux");
        assert_eq!(body["query"], "from(bucket: \"b\") |> range(start: -1m)");
        assert_eq!(
            body["dialect"]["annotations"],
            json!(["datatype", "group", "default"])
        );
        let e = request(
            &Source {
                credentials: Some(&BTreeMap::new()),
                ..src
            },
            "x",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "influxdb credentials does not contain an authentication token"
        );
    }

    const ANSWER: &str = "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string\r\n\
#group,false,false,true,true,false,false,true,true\r\n\
#default,_result,,,,,,,\r\n\
,result,table,_start,_stop,_time,_value,_field,_measurement\r\n\
,,0,2021-01-01T00:00:00Z,2021-01-01T00:01:00Z,2021-01-01T00:01:00Z,99.5,value,requests\r\n\
\r\n";

    #[test]
    fn the_value_of_the_record_is_read() {
        assert_eq!(parse(ANSWER).unwrap(), 99.5);
        let long = ANSWER.replace(",double,", ",long,").replace("99.5", "42");
        assert_eq!(parse(&long).unwrap(), 42.0);
        let string = ANSWER.replace(",double,", ",string,");
        assert!(
            parse(&string)
                .unwrap_err()
                .to_string()
                .contains("type string")
        );
    }

    #[test]
    fn no_records_empty_and_nan_are_no_values() {
        assert!(matches!(parse("\r\n"), Err(MetricError::NoValues)));
        assert!(matches!(parse(""), Err(MetricError::NoValues)));
        let empty = ANSWER.replace("99.5", "");
        assert!(matches!(parse(&empty), Err(MetricError::NoValues)));
        let nan = ANSWER.replace("99.5", "NaN");
        assert!(
            super::super::provider::parse(canary_core::provider::MetricProvider::Influxdb, &nan)
                .is_err()
        );
    }

    #[test]
    fn an_error_table_and_several_records_are_errors() {
        let error = "#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n,\"failed to compile: undefined identifier x\",897\r\n";
        assert_eq!(
            parse(error).unwrap_err().to_string(),
            "query error: failed to compile: undefined identifier x"
        );
        let two = ANSWER.replace("\r\n\r\n", "\r\n,,1,a,b,c,1.5,value,requests\r\n");
        assert!(parse(&two).unwrap_err().to_string().contains("2 records"));
    }
}
