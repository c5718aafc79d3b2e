//! What a key may be used for: its `routes` and `models`, checked at load time and per request.

use serde_json::Value;

use super::error::ApiKeyError;

/// The `routes` and `models` of one key; a key without either has no `Scope` at all.
#[derive(Debug)]
pub(crate) struct Scope {
    routes: Option<Box<[Box<str>]>>,
    models: Option<Box<[ModelPattern]>>,
}

/// One entry of `models`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ModelPattern {
    /// The model id itself.
    Exact(Box<str>),
    /// Every id starting with this text (`gpt-4o*`; empty for `*`).
    Prefix(Box<str>),
}

impl ModelPattern {
    /// Parses one `models` entry; the error says what is wrong with it.
    fn parse(text: &str) -> Result<ModelPattern, &'static str> {
        if text.is_empty() {
            return Err("must not be empty");
        }
        if text.trim() != text {
            return Err("must not start or end with whitespace");
        }
        match text.find('*') {
            None => Ok(ModelPattern::Exact(text.into())),
            Some(at) if at == text.len() - 1 => Ok(ModelPattern::Prefix(text[..at].into())),
            Some(_) => Err("`*` may only end a model pattern (`gpt-4o*`)"),
        }
    }

    fn matches(&self, model: &str) -> bool {
        match self {
            ModelPattern::Exact(id) => model == &**id,
            ModelPattern::Prefix(prefix) => model.starts_with(&**prefix),
        }
    }
}

/// A problem with one list entry: the field below the key (`routes[1]`) and what is wrong.
pub(crate) type ScopeError = (String, String);

impl Scope {
    /// The scope of a key with `routes` and `models`, or `None` when it has neither.
    pub(crate) fn build(
        routes: Option<&[String]>,
        models: Option<&[String]>,
    ) -> Result<Option<Scope>, ScopeError> {
        if routes.is_none() && models.is_none() {
            return Ok(None);
        }
        let routes = routes
            .map(|routes| {
                non_empty("routes", routes)?;
                routes
                    .iter()
                    .enumerate()
                    .map(|(i, route)| match route.trim() {
                        "" => Err((format!("routes[{i}]"), "must not be empty".to_owned())),
                        _ => Ok(Box::from(route.as_str())),
                    })
                    .collect::<Result<Box<[_]>, _>>()
            })
            .transpose()?;
        let models = models
            .map(|models| {
                non_empty("models", models)?;
                models
                    .iter()
                    .enumerate()
                    .map(|(i, model)| {
                        ModelPattern::parse(model)
                            .map_err(|reason| (format!("models[{i}]"), reason.to_owned()))
                    })
                    .collect::<Result<Box<[_]>, _>>()
            })
            .transpose()?;
        Ok(Some(Scope { routes, models }))
    }

    /// Whether the key may be used on `route` (the layer's route name, if it was given one).
    pub(crate) fn check_route(&self, route: Option<&str>) -> Result<(), ApiKeyError> {
        match (&self.routes, route) {
            (None, _) => Ok(()),
            (Some(routes), Some(route)) if routes.iter().any(|r| &**r == route) => Ok(()),
            // A layer that does not know its route cannot honour a route scope: refuse.
            (Some(_), _) => Err(ApiKeyError::RouteNotAllowed),
        }
    }

    /// Whether the key restricts models, so that the request body must be read.
    pub(crate) fn restricts_models(&self) -> bool {
        self.models.is_some()
    }

    /// Whether the key may send a request whose body is `body` (`None`: the body is not JSON).
    /// An empty body names no model and passes; any other body must be a JSON object whose
    /// `model` is a string the key allows.
    pub(crate) fn check_model(&self, body: ModelBody<'_>) -> Result<(), ApiKeyError> {
        let Some(patterns) = &self.models else {
            return Ok(());
        };
        let model = match body {
            ModelBody::Empty => return Ok(()),
            ModelBody::Json(json) => json.get("model").and_then(Value::as_str),
            ModelBody::NotJson => None,
        };
        match model {
            Some(model) if patterns.iter().any(|p| p.matches(model)) => Ok(()),
            _ => Err(ApiKeyError::ModelNotAllowed),
        }
    }
}

/// The request body as the model check sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ModelBody<'a> {
    /// No body at all.
    Empty,
    /// The body parsed as strict JSON.
    Json(&'a Value),
    /// A body that is not strict JSON.
    NotJson,
}

fn non_empty(field: &str, list: &[String]) -> Result<(), ScopeError> {
    if list.is_empty() {
        return Err((
            field.to_owned(),
            "must not be empty (leave it out to allow every one)".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn scope(routes: Option<&[&str]>, models: Option<&[&str]>) -> Scope {
        let own = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let routes = routes.map(own);
        let models = models.map(own);
        Scope::build(routes.as_deref(), models.as_deref())
            .unwrap()
            .expect("a scope")
    }

    #[test]
    fn no_lists_no_scope() {
        assert!(Scope::build(None, None).unwrap().is_none());
    }

    #[test]
    fn routes_allow_the_listed_names_only() {
        let scope = scope(Some(&["openai", "anthropic"]), None);
        assert_eq!(scope.check_route(Some("openai")), Ok(()));
        assert_eq!(scope.check_route(Some("anthropic")), Ok(()));
        assert_eq!(
            scope.check_route(Some("mcp")),
            Err(ApiKeyError::RouteNotAllowed)
        );
        assert_eq!(
            scope.check_route(Some("OpenAI")),
            Err(ApiKeyError::RouteNotAllowed),
            "route names are exact"
        );
        assert_eq!(
            scope.check_route(None),
            Err(ApiKeyError::RouteNotAllowed),
            "a layer without a route name cannot honour the scope"
        );
        assert!(!scope.restricts_models());
        assert_eq!(
            scope.check_model(ModelBody::NotJson),
            Ok(()),
            "no models list: any body"
        );
    }

    #[test]
    fn models_allow_exact_ids_and_prefixes() {
        let scope = scope(None, Some(&["gpt-4o", "claude-*"]));
        assert!(scope.restricts_models());
        assert_eq!(scope.check_route(Some("any")), Ok(()));
        assert_eq!(scope.check_route(None), Ok(()));
        let check = |body: Value| scope.check_model(ModelBody::Json(&body));
        assert_eq!(check(json!({"model": "gpt-4o"})), Ok(()));
        assert_eq!(check(json!({"model": "claude-sonnet-4"})), Ok(()));
        for denied in [
            json!({"model": "gpt-4o-mini"}),
            json!({"model": "GPT-4o"}),
            json!({"model": "claude"}),
            json!({"model": ["gpt-4o"]}),
            json!({"messages": []}),
            json!([{"model": "gpt-4o"}]),
        ] {
            assert_eq!(
                check(denied.clone()),
                Err(ApiKeyError::ModelNotAllowed),
                "{denied}"
            );
        }
        assert_eq!(
            scope.check_model(ModelBody::NotJson),
            Err(ApiKeyError::ModelNotAllowed)
        );
        assert_eq!(scope.check_model(ModelBody::Empty), Ok(()));
    }

    #[test]
    fn a_lone_star_allows_every_model_but_still_needs_one() {
        let scope = scope(None, Some(&["*"]));
        assert_eq!(
            scope.check_model(ModelBody::Json(&json!({"model": "anything"}))),
            Ok(())
        );
        assert_eq!(
            scope.check_model(ModelBody::Json(&json!({}))),
            Err(ApiKeyError::ModelNotAllowed)
        );
    }

    #[test]
    fn bad_entries_name_their_index() {
        let err = |routes: Option<Vec<String>>, models: Option<Vec<String>>| {
            Scope::build(routes.as_deref(), models.as_deref())
                .err()
                .unwrap()
        };
        let list = |items: &[&str]| Some(items.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(err(list(&[]), None).0, "routes");
        assert_eq!(err(list(&["a", " "]), None).0, "routes[1]");
        assert_eq!(err(None, list(&[])).0, "models");
        assert_eq!(err(None, list(&["gpt", ""])).0, "models[1]");
        assert_eq!(err(None, list(&["gpt-*-mini"])).0, "models[0]");
        assert_eq!(err(None, list(&["**"])).0, "models[0]");
        assert_eq!(err(None, list(&[" gpt-4o"])).0, "models[0]");
    }

    proptest! {
        /// A pattern without `*` matches exactly its text; `p*` matches exactly what starts with
        /// `p`; anything with `*` elsewhere is refused at load.
        #[test]
        fn patterns_match_as_documented(pattern in "[a-z0-9.*-]{0,12}", model in "[a-z0-9.*-]{0,14}") {
            match ModelPattern::parse(&pattern) {
                Ok(ModelPattern::Exact(id)) => {
                    prop_assert!(!pattern.contains('*') && !pattern.is_empty());
                    prop_assert_eq!(ModelPattern::Exact(id).matches(&model), model == pattern);
                }
                Ok(ModelPattern::Prefix(prefix)) => {
                    prop_assert_eq!(format!("{prefix}*"), pattern.clone());
                    prop_assert!(!prefix.contains('*'));
                    let matched = ModelPattern::Prefix(prefix.clone()).matches(&model);
                    prop_assert_eq!(matched, model.starts_with(&*prefix));
                    let extended = format!("{prefix}{model}");
                    prop_assert!(ModelPattern::Prefix(prefix).matches(&extended));
                }
                Err(_) => prop_assert!(
                    pattern.is_empty() || pattern.find('*').is_some_and(|at| at + 1 != pattern.len())
                ),
            }
        }

        /// Whatever the body, a scoped key is refused unless its `model` is allowed.
        #[test]
        fn only_allowed_models_pass(model in "\\PC{0,16}") {
            let scope = scope(None, Some(&["gpt-4o", "o3*"]));
            let allowed = model == "gpt-4o" || model.starts_with("o3");
            let result = scope.check_model(ModelBody::Json(&json!({"model": model})));
            prop_assert_eq!(result.is_ok(), allowed);
        }
    }
}
