//! Task resources: which service integration a Task state calls, and how it waits.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pattern {
    /// Call the service and continue with its response.
    RequestResponse,
    /// Call the service, then park until `SendTaskSuccess`/`SendTaskFailure` with the token.
    WaitForTaskToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DynamoDbOp {
    GetItem,
    PutItem,
    UpdateItem,
    DeleteItem,
}

impl DynamoDbOp {
    pub fn api_name(self) -> &'static str {
        match self {
            DynamoDbOp::GetItem => "getItem",
            DynamoDbOp::PutItem => "putItem",
            DynamoDbOp::UpdateItem => "updateItem",
            DynamoDbOp::DeleteItem => "deleteItem",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Service {
    /// `arn:aws:states:::lambda:invoke`: Parameters hold `FunctionName` and `Payload`; the
    /// result wraps the function's output in `Payload`.
    LambdaInvoke,
    /// `arn:aws:lambda:…:function:NAME`: the effective input is the payload and the function's
    /// output is the result.
    LambdaFunction {
        function: String,
    },
    SqsSendMessage,
    EventsPutEvents,
    DynamoDb(DynamoDbOp),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub arn: String,
    pub service: Service,
    pub pattern: Pattern,
}

/// Parameters each integration requires (checked at load time; `X.$` counts as `X`).
pub fn required_parameters(service: &Service) -> &'static [&'static str] {
    match service {
        Service::LambdaInvoke => &["FunctionName"],
        Service::LambdaFunction { .. } => &[],
        Service::SqsSendMessage => &["QueueUrl", "MessageBody"],
        Service::EventsPutEvents => &["Entries"],
        Service::DynamoDb(DynamoDbOp::PutItem) => &["TableName", "Item"],
        Service::DynamoDb(_) => &["TableName", "Key"],
    }
}

impl Resource {
    pub fn parse(arn: &str) -> Result<Resource, String> {
        let parts: Vec<&str> = arn.splitn(7, ':').collect();
        let unsupported = || {
            format!(
                "unsupported resource '{arn}': expected a Lambda function ARN or one of \
                 arn:aws:states:::lambda:invoke, sqs:sendMessage, events:putEvents, \
                 dynamodb:getItem/putItem/updateItem/deleteItem (optionally .waitForTaskToken)"
            )
        };
        if parts.len() < 6 || parts[0] != "arn" || !parts[1].starts_with("aws") {
            return Err(unsupported());
        }
        if parts[2] == "lambda" {
            // arn:aws:lambda:region:account:function:name[:alias]
            return match parts.get(5..) {
                Some(["function", rest]) if !rest.is_empty() => Ok(Resource {
                    arn: arn.to_owned(),
                    service: Service::LambdaFunction {
                        function: rest.split(':').next().unwrap_or(rest).to_owned(),
                    },
                    pattern: Pattern::RequestResponse,
                }),
                _ => Err(unsupported()),
            };
        }
        if parts[2] != "states" {
            return Err(unsupported());
        }
        let api = parts[5..].join(":");
        let (api, pattern) = match api.strip_suffix(".waitForTaskToken") {
            Some(a) => (a.to_owned(), Pattern::WaitForTaskToken),
            None => (api, Pattern::RequestResponse),
        };
        let service = match api.as_str() {
            "lambda:invoke" => Service::LambdaInvoke,
            "sqs:sendMessage" => Service::SqsSendMessage,
            "events:putEvents" => Service::EventsPutEvents,
            "dynamodb:getItem" => Service::DynamoDb(DynamoDbOp::GetItem),
            "dynamodb:putItem" => Service::DynamoDb(DynamoDbOp::PutItem),
            "dynamodb:updateItem" => Service::DynamoDb(DynamoDbOp::UpdateItem),
            "dynamodb:deleteItem" => Service::DynamoDb(DynamoDbOp::DeleteItem),
            _ => return Err(unsupported()),
        };
        if matches!(service, Service::DynamoDb(_)) && pattern == Pattern::WaitForTaskToken {
            return Err(format!(
                "'{arn}': DynamoDB integrations do not support .waitForTaskToken"
            ));
        }
        Ok(Resource {
            arn: arn.to_owned(),
            service,
            pattern,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_integrations() {
        let r = Resource::parse("arn:aws:states:::lambda:invoke.waitForTaskToken").expect("valid");
        assert_eq!(
            (r.service, r.pattern),
            (Service::LambdaInvoke, Pattern::WaitForTaskToken)
        );
        let r = Resource::parse("arn:aws:lambda:us-east-1:123456789012:function:approve:live")
            .expect("valid");
        assert_eq!(
            r.service,
            Service::LambdaFunction {
                function: "approve".into()
            }
        );
        let r = Resource::parse("arn:aws:states:::dynamodb:updateItem").expect("valid");
        assert_eq!(r.service, Service::DynamoDb(DynamoDbOp::UpdateItem));
        assert!(Resource::parse("arn:aws:states:::dynamodb:getItem.waitForTaskToken").is_err());
        assert!(Resource::parse("arn:aws:states:::glue:startJobRun.sync").is_err());
        assert!(Resource::parse("not-an-arn").is_err());
    }
}
