# lme4 side of the mmfast benchmark: time lme4::lmer / lme4::glmer on a list of cases.
#
# Usage:  Rscript benchmarks/lme4_timing.R cases.json out.json
#
# cases.json is a JSON list of cases, each an object with
#   case           name (used as the key in the output)
#   data_path      gzipped CSV, read with read.csv(gzfile(data_path))
#   formula        lme4 formula, as text
#   REML           true/false (LMMs)
#   factor_levels  {column: [levels in order]}: these columns become factors with exactly
#                  these levels (as.character first); nothing else is changed or dropped
#                  (rows with missing values are dropped by lme4's default na.action)
#   kind           "LMM", "GLMM" or "LMM-loop" (the special case many_small)
#   family         "binomial", "poisson", ... (GLMMs)
#   nAGQ           GLMM quadrature points (default 1)
#   n_fits         timed fits (default 3)
#   warmup         true: one untimed fit of the case first (default false)
#   control        "ignore": lmerControl(check.nobs.vs.nRE = "ignore"); null: defaults
#   by             (LMM-loop only) column to split by, default "gene"
#   binary_response (optional) {column, success}: replace column by as.integer(x == success)
#
# Each fit times the plain call, system.time(lme4::lmer(...))["elapsed"].
# out.json: {"session": {R, lme4, Matrix, blas, lapack, ...},
#            "results": [{case, status, seconds, median_s, logLik, feval, ...}]}
# It is rewritten after every case, so a crash leaves the finished cases readable.
# A failing case is reported with status "error" and an error message; the run goes on.
#
# many_small (kind "LMM-loop"): the data are split by gene (timed separately: split_s),
# then suppressMessages(suppressWarnings(lmer(y ~ group + (1 | animal), d))) is looped over
# all genes n_fits times (default 1); seconds = total loop time of each pass; logLik and
# feval are per gene (named lists), the loop body also stores logLik and feval of each fit.

suppressPackageStartupMessages({
  library(jsonlite)
  library(lme4)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 2L) {
  stop("usage: Rscript benchmarks/lme4_timing.R cases.json out.json")
}
cases_path <- args[[1L]]
out_path <- args[[2L]]

log_msg <- function(...) {
  cat(sprintf("[lme4_timing] %s\n", paste0(...)), file = stderr())
}

# Value or default when NULL / NA / empty.
`%or%` <- function(x, default) {
  if (is.null(x) || length(x) == 0L || (length(x) == 1L && is.na(x))) default else x
}

session_info <- function() {
  si <- sessionInfo()
  list(
    R = paste(R.version$major, R.version$minor, sep = "."),
    lme4 = as.character(packageVersion("lme4")),
    Matrix = as.character(packageVersion("Matrix")),
    blas = si$BLAS %or% NA_character_,
    lapack = si$LAPACK %or% NA_character_,
    platform = R.version$platform,
    running = si$running %or% NA_character_,
    cores = parallel::detectCores()
  )
}

# Read the case's CSV and build the listed factors with exactly the given levels.
prepare_data <- function(case) {
  data <- read.csv(gzfile(case$data_path), stringsAsFactors = FALSE)
  levels_list <- case$factor_levels %or% list()
  for (column in names(levels_list)) {
    if (!column %in% names(data)) {
      stop(sprintf("factor column '%s' is not in %s", column, case$data_path))
    }
    raw <- as.character(data[[column]])
    lev <- as.character(unlist(levels_list[[column]]))
    fac <- factor(raw, levels = lev)
    bad <- !is.na(raw) & is.na(fac)
    if (any(bad)) {
      stop(sprintf("column '%s' has values not among the given levels: %s", column,
                   paste(head(unique(raw[bad]), 5L), collapse = ", ")))
    }
    data[[column]] <- fac
  }
  binary <- case$binary_response
  if (!is.null(binary)) {
    column <- binary$column
    data[[column]] <- as.integer(as.character(data[[column]]) == binary$success)
  }
  data
}

# A function of the data that performs one plain lme4 fit of the case.
make_fitter <- function(case) {
  form <- as.formula(case$formula)
  kind <- case$kind %or% "LMM"
  if (identical(kind, "GLMM")) {
    fam <- get(case$family, mode = "function", envir = asNamespace("stats"))()
    nagq <- as.integer(case$nAGQ %or% 1L)
    function(data) lme4::glmer(form, data = data, family = fam, nAGQ = nagq)
  } else {
    reml <- isTRUE(case$REML %or% TRUE)
    if (identical(case$control %or% "", "ignore")) {
      ctrl <- lme4::lmerControl(check.nobs.vs.nRE = "ignore")
    } else {
      ctrl <- lme4::lmerControl()
    }
    function(data) lme4::lmer(form, data = data, REML = reml, control = ctrl)
  }
}

feval_of <- function(fit) {
  fe <- fit@optinfo$feval
  if (is.null(fe)) NA_integer_ else as.integer(fe)
}

run_single <- function(case) {
  data <- prepare_data(case)
  fitter <- make_fitter(case)
  n_fits <- as.integer(case$n_fits %or% 3L)
  if (isTRUE(case$warmup)) {
    invisible(suppressMessages(suppressWarnings(fitter(data))))
  }
  seconds <- numeric(n_fits)
  fit <- NULL
  messages <- character(0)
  for (i in seq_len(n_fits)) {
    # Warnings/messages are collected outside the timed call (the handlers are
    # set up before system.time starts, and only run when lme4 emits something).
    seconds[i] <- withCallingHandlers(
      system.time(fit <- fitter(data))[["elapsed"]],
      warning = function(w) {
        messages <<- c(messages, conditionMessage(w))
        invokeRestart("muffleWarning")
      },
      message = function(m) {
        messages <<- c(messages, conditionMessage(m))
        invokeRestart("muffleMessage")
      }
    )
  }
  list(
    case = case$case, status = "ok", kind = case$kind %or% "LMM",
    nobs = nobs(fit), seconds = I(seconds), median_s = median(seconds),
    logLik = as.numeric(logLik(fit)), feval = feval_of(fit),
    singular = isSingular(fit),
    messages = I(unique(trimws(messages)))
  )
}

run_loop <- function(case) {
  data <- prepare_data(case)
  by <- case$by %or% "gene"
  form <- as.formula(case$formula %or% "y ~ group + (1 | animal)")
  reml <- isTRUE(case$REML %or% TRUE)
  if (is.null(case$factor_levels$group) && "group" %in% names(data)) {
    data$group <- factor(data$group, levels = c("ctrl", "treat"))
  }
  if ("animal" %in% names(data) && !is.factor(data$animal)) {
    data$animal <- factor(data$animal)
  }
  split_s <- system.time(pieces <- split(data, data[[by]]))[["elapsed"]]
  n_fits <- as.integer(case$n_fits %or% 1L)
  seconds <- numeric(n_fits)
  groups <- names(pieces)
  ll <- setNames(numeric(length(groups)), groups)
  fe <- setNames(integer(length(groups)), groups)
  for (pass in seq_len(n_fits)) {
    seconds[pass] <- system.time(
      for (g in groups) {
        fit <- suppressMessages(suppressWarnings(
          lme4::lmer(form, data = pieces[[g]], REML = reml)))
        ll[[g]] <- as.numeric(logLik(fit))
        fe[[g]] <- feval_of(fit)
      }
    )[["elapsed"]]
  }
  list(
    case = case$case, status = "ok", kind = "LMM-loop", nobs = nrow(data),
    n_groups = length(groups), split_s = split_s,
    seconds = I(seconds), median_s = median(seconds),
    logLik = sum(ll), feval = sum(fe),
    logLik_by_group = as.list(ll), feval_by_group = as.list(fe)
  )
}

write_out <- function(session, results) {
  out <- list(session = session, results = results)
  tmp <- paste0(out_path, ".tmp")
  write_json(out, tmp, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null",
             na = "null")
  invisible(file.rename(tmp, out_path))
}

cases <- fromJSON(cases_path, simplifyVector = FALSE)
session <- session_info()
results <- list()

# Load and byte-compile lme4's code paths once before any timing.
invisible(suppressMessages(suppressWarnings({
  lme4::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
              lme4::cbpp, family = binomial)
})))

for (case in cases) {
  name <- case$case %or% "?"
  log_msg("case ", name, " ...")
  res <- tryCatch(
    if (identical(case$kind, "LMM-loop")) run_loop(case) else run_single(case),
    error = function(e) {
      list(case = name, status = "error", error = conditionMessage(e))
    }
  )
  if (identical(res$status, "ok")) {
    log_msg(sprintf("case %s: median %.3f s, logLik %.6f", name, res$median_s, res$logLik))
  } else {
    log_msg("case ", name, " FAILED: ", res$error)
  }
  results[[length(results) + 1L]] <- res
  write_out(session, results)
}
write_out(session, results)
