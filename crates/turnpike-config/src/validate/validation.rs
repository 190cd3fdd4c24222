//! Request validation checks: every schema compiles (with no remote `$ref`s), parameters
//! are named once, and a path parameter is a `{name}` of each of the route's paths.

use super::Checker;
use crate::de::Parsed;
use crate::model::{ParamIn, RequestValidation, Route};

pub(super) fn check(c: &mut Checker<'_>, parsed: &Parsed) {
    for (route, i) in parsed.config.routes.iter().zip(&parsed.route_at) {
        if let Some(v) = &route.validate {
            validation(c, &format!("routes[{i}].validate"), route, v);
        }
    }
}

fn validation(c: &mut Checker<'_>, at: &str, route: &Route, v: &RequestValidation) {
    let mut seen = Vec::new();
    for (j, p) in v.parameters.iter().enumerate() {
        let here = format!("{at}.parameters[{j}]");
        if p.name.is_empty() {
            c.err(format!("{here}.name"), "must not be empty");
        }
        if seen.contains(&(p.location, p.name.as_str())) {
            c.err(
                format!("{here}.name"),
                format!("parameter {:?} is listed twice", p.name),
            );
        }
        seen.push((p.location, p.name.as_str()));
        let template = format!("{{{}}}", p.name);
        if p.location == ParamIn::Path && !route.paths.iter().all(|path| path.contains(&template)) {
            let msg = format!(
                "every path of the route needs a `{template}` segment for this path parameter"
            );
            c.err(format!("{here}.name"), msg);
        }
        schema(c, &format!("{here}.schema"), &p.schema);
    }
    if let Some(body) = &v.body {
        schema(c, &format!("{at}.body.schema"), &body.schema);
    }
}

/// A schema the gateway cannot compile would refuse every request, so it is refused here.
fn schema(c: &mut Checker<'_>, at: &str, schema: &serde_json::Value) {
    if let Err(e) = jsonschema::options().build(schema) {
        c.err(at.to_owned(), format!("not a usable JSON Schema: {e}"));
    }
}
