//! The SQL engine behind the fake: what a statement is, the catalog (databases, tables,
//! views) and the DataFusion session a query runs in, and the DDL it executes itself
//! (`CREATE DATABASE`, `CREATE EXTERNAL TABLE`, `CREATE VIEW`, `DROP`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::common::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{SessionConfig, SessionContext};
use regex::Regex;
use sqlparser::ast::{ObjectName, ObjectType, SchemaName, Statement};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::hive_ddl::{AthenaDdlDialect, ParsedTable, hive_table_from, object_name_parts};
use super::parameters::bind_parameters;
use super::results::render;
use super::table::HiveTableProvider;
use super::udf::athena_udfs;
use super::{CATALOG, Outcome, ResultTable};

/// What a statement is, from its first words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Select,
    View,
    HiveDdl,
    Unsupported,
}

impl Kind {
    /// `StatementType` in `GetQueryExecution`.
    pub(super) fn statement_type(self) -> &'static str {
        match self {
            Self::Select => "DML",
            _ => "DDL",
        }
    }
}

pub(super) fn statement_kind(sql: &str) -> Kind {
    let Ok(tokens) = Tokenizer::new(&AthenaDdlDialect, sql).tokenize() else {
        return Kind::Unsupported;
    };
    let words: Vec<String> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .take(4)
        .map(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_uppercase(),
            other => other.to_string(),
        })
        .collect();
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["SELECT" | "WITH" | "VALUES" | "(", ..] => Kind::Select,
        ["CREATE", "VIEW", ..] | ["CREATE", "OR", "REPLACE", "VIEW"] => Kind::View,
        ["CREATE", "DATABASE" | "SCHEMA" | "EXTERNAL", ..]
        | ["DROP", "TABLE" | "VIEW" | "DATABASE" | "SCHEMA", ..] => Kind::HiveDdl,
        _ => Kind::Unsupported,
    }
}

/// The mounted buckets: each bucket's name and the local directory standing in for it.
pub(super) type Buckets = Arc<Mutex<BTreeMap<String, PathBuf>>>;

#[derive(Debug, Clone)]
enum Registered {
    Table(Arc<HiveTableProvider>),
    View(String),
}

/// The catalog and the mounted buckets, and what runs a statement against them.
#[derive(Debug)]
pub(super) struct Engine {
    pub(super) catalog: Arc<MemoryCatalogProvider>,
    pub(super) buckets: Buckets,
    /// (database, name) → what was registered, to find what a query reads.
    registry: Mutex<BTreeMap<(String, String), Registered>>,
}

impl Engine {
    pub(super) fn new() -> Self {
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog
            .register_schema("default", Arc::new(MemorySchemaProvider::new()))
            .expect("register the default database");
        Self {
            catalog,
            buckets: Buckets::default(),
            registry: Mutex::new(BTreeMap::new()),
        }
    }

    fn registry(&self) -> MutexGuard<'_, BTreeMap<(String, String), Registered>> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn session(&self, database: Option<&str>) -> SessionContext {
        let schema = database.map_or_else(|| "default".to_owned(), str::to_lowercase);
        let config = SessionConfig::new()
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(CATALOG, schema)
            .with_information_schema(false);
        let ctx = SessionContext::new_with_config(config);
        let catalog: Arc<dyn CatalogProvider> = self.catalog.clone();
        ctx.register_catalog(CATALOG, Arc::clone(&catalog));
        ctx.register_catalog("AwsDataCatalog", catalog);
        for udf in athena_udfs() {
            ctx.register_udf(udf);
        }
        ctx
    }

    pub(super) async fn execute(
        &self,
        sql: &str,
        parameters: &[String],
        database: Option<&str>,
    ) -> Outcome {
        let kind = statement_kind(sql);
        if kind != Kind::Select && !parameters.is_empty() {
            return Outcome::failed(
                "INVALID_PARAMETER: ExecutionParameters are only supported in SELECT statements",
            );
        }
        match kind {
            Kind::Select => self.select(sql, parameters, database).await,
            Kind::View => self.create_view(sql, database).await,
            Kind::HiveDdl => self.hive_ddl(sql, database),
            Kind::Unsupported => Outcome::failed(format!(
                "unsupported statement: the fake Athena runs SELECT, WITH, CREATE DATABASE, \
                 CREATE EXTERNAL TABLE, CREATE VIEW and DROP TABLE (got: {})",
                sql.trim().chars().take(60).collect::<String>()
            )),
        }
    }

    async fn select(&self, sql: &str, parameters: &[String], database: Option<&str>) -> Outcome {
        let (sql, values) = match bind_parameters(sql, parameters) {
            Ok(bound) => bound,
            Err(reason) => return Outcome::failed(reason),
        };
        let ctx = self.session(database);
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let run = async {
            let mut df = ctx.sql_with_options(&sql, options).await?;
            if !values.is_empty() {
                df = df.with_param_values(values)?;
            }
            let schema = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            Ok::<_, DataFusionError>((schema, batches))
        };
        match run.await {
            Ok((schema, batches)) => match render(&schema, &batches) {
                Ok(result) => Outcome::done(result, self.scanned(&sql)),
                Err(e) => Outcome::failed(failure_reason(&e)),
            },
            Err(e) => Outcome::failed(failure_reason(&e)),
        }
    }

    /// Bytes of the files last read by the tables `sql` names (through views too).
    fn scanned(&self, sql: &str) -> u64 {
        let registry = self.registry();
        let mut texts = vec![sql.to_owned()];
        let mut seen = std::collections::BTreeSet::new();
        let mut bytes = 0;
        while let Some(text) = texts.pop() {
            for (key, registered) in registry.iter() {
                if seen.contains(key) || !mentions(&text, &key.1) {
                    continue;
                }
                seen.insert(key.clone());
                match registered {
                    Registered::Table(t) => bytes += t.last_bytes.load(Ordering::Relaxed),
                    Registered::View(view_sql) => texts.push(view_sql.clone()),
                }
            }
        }
        bytes
    }

    async fn create_view(&self, sql: &str, database: Option<&str>) -> Outcome {
        let key = match Parser::parse_sql(&GenericDialect {}, sql) {
            Ok(statements) => match statements.as_slice() {
                [Statement::CreateView(view)] => {
                    let (db, name) = split_name(&view.name, database);
                    (db, name)
                }
                _ => return Outcome::failed("expected one CREATE VIEW statement"),
            },
            Err(e) => return Outcome::failed(e.to_string()),
        };
        let ctx = self.session(database);
        let options = SQLOptions::new()
            .with_allow_ddl(true)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let run = async {
            let df = ctx.sql_with_options(sql, options).await?;
            df.collect().await
        };
        match run.await {
            Ok(_) => {
                self.registry()
                    .insert(key, Registered::View(sql.to_owned()));
                Outcome::done(ResultTable::default(), 0)
            }
            Err(e) => Outcome::failed(failure_reason(&e)),
        }
    }

    fn hive_ddl(&self, sql: &str, database: Option<&str>) -> Outcome {
        let statements = match Parser::parse_sql(&AthenaDdlDialect, sql) {
            Ok(s) => s,
            Err(e) => return Outcome::failed(format!("line 1:1: {e}")),
        };
        let [statement] = statements.as_slice() else {
            return Outcome::failed("Only one sql statement is allowed");
        };
        let done = || Outcome::done(ResultTable::default(), 0);
        match statement {
            Statement::CreateDatabase {
                db_name,
                if_not_exists,
                ..
            } => self.create_database(&object_name_parts(db_name), *if_not_exists),
            Statement::CreateSchema {
                schema_name: SchemaName::Simple(name),
                if_not_exists,
                ..
            } => self.create_database(&object_name_parts(name), *if_not_exists),
            Statement::CreateTable(create) => {
                let parsed = match hive_table_from(create) {
                    Ok(p) => p,
                    Err(e) => return Outcome::failed(e),
                };
                self.create_table(parsed, database)
            }
            Statement::Drop {
                object_type: ObjectType::Table | ObjectType::View,
                if_exists,
                names,
                ..
            } => {
                for name in names {
                    let (db, table) = split_name(name, database);
                    let Some(schema) = self.catalog.schema(&db) else {
                        return Outcome::failed(format!(
                            "SemanticException [Error 10072]: Database does not exist: {db}"
                        ));
                    };
                    if schema.table_exist(&table) {
                        if let Err(e) = schema.deregister_table(&table) {
                            return Outcome::failed(e.to_string());
                        }
                        self.registry().remove(&(db, table));
                    } else if !*if_exists {
                        return Outcome::failed(format!(
                            "SemanticException [Error 10001]: Table not found {db}.{table}"
                        ));
                    }
                }
                done()
            }
            Statement::Drop {
                object_type: ObjectType::Database | ObjectType::Schema,
                if_exists,
                names,
                ..
            } => {
                for name in names {
                    let db = object_name_parts(name).join(".");
                    match self.catalog.schema(&db) {
                        Some(schema) if !schema.table_names().is_empty() => {
                            return Outcome::failed(format!(
                                "InvalidOperationException: Database {db} is not empty"
                            ));
                        }
                        Some(_) => {
                            if let Err(e) = self.catalog.deregister_schema(&db, false) {
                                return Outcome::failed(e.to_string());
                            }
                        }
                        None if *if_exists => {}
                        None => {
                            return Outcome::failed(format!(
                                "SemanticException [Error 10072]: Database does not exist: {db}"
                            ));
                        }
                    }
                }
                done()
            }
            _ => Outcome::failed("unsupported statement"),
        }
    }

    fn create_database(&self, parts: &[String], if_not_exists: bool) -> Outcome {
        let name = parts.join(".");
        if self.catalog.schema(&name).is_some() {
            if if_not_exists {
                return Outcome::done(ResultTable::default(), 0);
            }
            return Outcome::failed(format!(
                "AlreadyExistsException: Database {name} already exists"
            ));
        }
        match self
            .catalog
            .register_schema(&name, Arc::new(MemorySchemaProvider::new()))
        {
            Ok(_) => Outcome::done(ResultTable::default(), 0),
            Err(e) => Outcome::failed(e.to_string()),
        }
    }

    fn create_table(&self, parsed: ParsedTable, database: Option<&str>) -> Outcome {
        let db = parsed
            .table
            .database
            .clone()
            .or_else(|| database.map(str::to_lowercase))
            .unwrap_or_else(|| "default".to_owned());
        let Some(schema) = self.catalog.schema(&db) else {
            return Outcome::failed(format!(
                "SemanticException [Error 10072]: Database does not exist: {db}"
            ));
        };
        let name = parsed.table.name.clone();
        if schema.table_exist(&name) {
            if parsed.if_not_exists {
                return Outcome::done(ResultTable::default(), 0);
            }
            return Outcome::failed("AlreadyExistsException: Table already exists");
        }
        let provider = match HiveTableProvider::new(parsed, Arc::clone(&self.buckets)) {
            Ok(p) => Arc::new(p),
            Err(e) => return Outcome::failed(e),
        };
        if let Err(e) = schema.register_table(name.clone(), provider.clone()) {
            return Outcome::failed(e.to_string());
        }
        self.registry()
            .insert((db, name), Registered::Table(provider));
        Outcome::done(ResultTable::default(), 0)
    }
}

/// Whether `sql` mentions `name` as a whole word (case-insensitive).
fn mentions(sql: &str, name: &str) -> bool {
    Regex::new(&format!(
        r"(?i)(^|[^A-Za-z0-9_]){}([^A-Za-z0-9_]|$)",
        regex::escape(name)
    ))
    .is_ok_and(|re| re.is_match(sql))
}

/// The `StateChangeReason` of a DataFusion error: its text, or the Athena-style message a
/// table read produced (`HIVE_…`).
fn failure_reason(e: &DataFusionError) -> String {
    let text = e.to_string();
    match text.find("HIVE_") {
        Some(i) => text[i..].to_owned(),
        None => text,
    }
}

/// (database, object) of a one- or two-part name (a leading catalog part is ignored).
fn split_name(name: &ObjectName, database: Option<&str>) -> (String, String) {
    let parts = object_name_parts(name);
    let default = || database.map_or_else(|| "default".to_owned(), str::to_lowercase);
    match parts.as_slice() {
        [.., db, table] => (db.clone(), table.clone()),
        [table] => (default(), table.clone()),
        [] => (default(), String::new()),
    }
}
