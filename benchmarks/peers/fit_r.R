# R side of the peer benchmark: one engine (lme4 or glmmTMB) fitting one workload.
#
# Usage: Rscript benchmarks/peers/fit_r.R spec.json out.json
# spec: {engine: "lme4"|"glmmTMB", formula, kind: "LMM"|"GLMM", family, factors: [cols],
#        csv, n_fits, tight: bool, stages: bool}
# The first fit is timed; when it took under 2 s it was the warm-up and n_fits more are timed.
# lme4 with tight = true also refits from its own optimum with BOBYQA to rhoend 1e-10
# (untimed): that logLik is the correctness reference of every engine.  stages = true (lme4):
# seconds of lFormula + mkLmerDevfun (set-up) and of one deviance evaluation at the optimum.
# out: {status, seconds, median_s, logLik, evaluations, messages, logLik_tight, stages}.
suppressPackageStartupMessages(library(jsonlite))
args <- commandArgs(trailingOnly = TRUE)
spec <- fromJSON(args[[1L]])
out_path <- args[[2L]]
engine <- spec$engine
suppressPackageStartupMessages(
  if (engine == "lme4") library(lme4) else library(glmmTMB))

data <- read.csv(spec$csv)
for (f in spec$factors) data[[f]] <- factor(data[[f]])
form <- as.formula(spec$formula)
glmm <- identical(spec$kind, "GLMM")
fam <- if (glmm) get(spec$family, mode = "function", envir = asNamespace("stats"))() else
  gaussian()

fit_once <- function() {
  if (engine == "lme4") {
    if (glmm) glmer(form, data = data, family = fam) else lmer(form, data = data, REML = FALSE)
  } else {
    glmmTMB(form, data = data, family = fam, REML = FALSE)
  }
}

messages <- character(0)
quietly <- function(expr) withCallingHandlers(expr,
  warning = function(w) { messages <<- c(messages, conditionMessage(w));
                          invokeRestart("muffleWarning") },
  message = function(m) { messages <<- c(messages, conditionMessage(m));
                          invokeRestart("muffleMessage") })
elapsed <- function() {
  t <- quietly(system.time(fit <<- fit_once())[["elapsed"]])
  t
}

evaluations <- function(fit) {
  if (engine == "lme4") {
    fe <- fit@optinfo$feval
    return(if (is.null(fe)) NA else as.integer(fe))
  }
  ev <- fit$fit$evaluations
  if (is.null(ev)) NA else as.integer(ev[[1L]])
}

save <- function(res) {
  res$version <- as.character(packageVersion(if (engine == "lme4") "lme4" else "glmmTMB"))
  res$session <- list(R = paste(R.version$major, R.version$minor, sep = "."),
                      blas = sessionInfo()$BLAS)
  write_json(res, out_path, auto_unbox = TRUE, digits = NA, null = "null", na = "null")
}

result <- tryCatch({
  fit <- NULL
  seconds <- elapsed()
  if (seconds < 2 && spec$n_fits > 1) seconds <- vapply(seq_len(spec$n_fits), function(i)
    elapsed(), numeric(1))
  res <- list(status = "ok", seconds = I(seconds), median_s = median(seconds),
              logLik = as.numeric(logLik(fit)), evaluations = evaluations(fit),
              messages = I(unique(trimws(messages))))
  if (engine == "lme4" && isTRUE(spec$stages) && !glmm) {
    setup <- system.time({
      lf <- lFormula(form, data = data, REML = FALSE)
      devfun <- do.call(mkLmerDevfun, lf)
    })[["elapsed"]]
    theta <- getME(fit, "theta")
    k <- 1L
    repeat {  # enough calls for system.time's millisecond resolution
      t <- system.time(for (i in seq_len(k)) devfun(theta))[["elapsed"]]
      if (t > 0.2 || k >= 1024L) break
      k <- k * 4L
    }
    res$stages <- list(setup_s = setup, eval_s = t / k, total_s = res$median_s)
  }
  save(res)  # the timed fit survives a timeout in the refits below
  if (engine == "lme4" && isTRUE(spec$tight)) {
    opt <- list(rhobeg = 1e-3, rhoend = 1e-10, maxfun = 1e6)
    refit <- function() suppressWarnings(suppressMessages(if (glmm) {
      glmer(form, data = data, family = fam,
            start = list(theta = getME(fit, "theta"), fixef = fixef(fit)),
            control = glmerControl(optimizer = "bobyqa", optCtrl = opt,
                                   nAGQ0initStep = FALSE))
    } else {
      lmer(form, data = data, REML = FALSE, start = getME(fit, "theta"),
           control = lmerControl(optimizer = "bobyqa", optCtrl = opt))
    }))
    t_tight <- system.time(tight <- tryCatch(refit(), error = function(e) e))[["elapsed"]]
    if (inherits(tight, "error")) {
      res$tight <- list(error = conditionMessage(tight))
    } else {
      res$logLik_tight <- max(as.numeric(logLik(tight)), res$logLik)
      res$tight <- list(logLik = as.numeric(logLik(tight)), seconds = t_tight,
                        evaluations = evaluations(tight))
    }
  }
  res
}, error = function(e) list(status = "error", note = conditionMessage(e)))
save(result)
