# lme4's best criterion for every case of tests/oracle/differential_designs.py; writes
# tests/reference/differential.json.gz (the cases, their data, lme4's best fit).  Run from the
# repo root after the generator:
#   python tests/oracle/differential_designs.py /tmp/differential_input.json.gz
#   Rscript tests/oracle/differential.R /tmp/differential_input.json.gz
# Every case is fitted by BOBYQA (rhoend 1e-12, maxfun 1e5) and by Nelder-Mead (tight
# tolerances), each from lme4's default start and from four more starts (θ scaled by 0.1 and
# 3, random positive ones); the best criterion is kept, with the default fit's for reference.
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
inp <- if (length(args)) args[1] else "/tmp/differential_input.json.gz"
cases <- fromJSON(gzfile(inp), simplifyVector = FALSE)
as_fac <- function(x) factor(x, levels = sort(unique(x)))
bobyqa <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5),
                      check.conv.singular = "ignore", check.conv.grad = "ignore",
                      check.conv.hess = "ignore")
nm <- lmerControl(optimizer = "Nelder_Mead",
                  optCtrl = list(FtolAbs = 1e-14, FtolRel = 1e-15, XtolRel = 1e-12, maxfun = 1e5),
                  check.conv.singular = "ignore", check.conv.grad = "ignore",
                  check.conv.hess = "ignore")
crit <- function(m) unname(if (isREML(m)) m@devcomp$cmp["REML"] else m@devcomp$cmp["dev"])
out <- list()
t0 <- Sys.time()
for (cs in cases) {
  d <- as.data.frame(lapply(cs$data, unlist), stringsAsFactors = FALSE)
  for (v in c("f", "a", "b", "c", "g")) d[[v]] <- as_fac(d[[v]])
  form <- as.formula(cs$formula)
  fit <- function(ctrl, start = NULL) {
    m <- if (cs$weights) {
      suppressWarnings(suppressMessages(
        lmer(form, d, REML = cs$reml, weights = w, control = ctrl, start = start)))
    } else {
      suppressWarnings(suppressMessages(
        lmer(form, d, REML = cs$reml, control = ctrl, start = start)))
    }
    list(crit = crit(m), theta = unname(getME(m, "theta")))
  }
  default <- tryCatch(fit(lmerControl(check.conv.singular = "ignore")), error = function(e) NULL)
  if (is.null(default)) { message(cs$id, ": lme4 refuses"); next }
  lf <- lFormula(form, d)
  th0 <- lf$reTrms$theta
  lower <- lf$reTrms$lower
  set.seed(cs$seed)
  starts <- list(NULL, th0 * 0.1, th0 * 3,
                 ifelse(lower == 0, runif(length(th0), 0.05, 2), rnorm(length(th0), 0, 0.3)),
                 ifelse(lower == 0, runif(length(th0), 0.05, 2), rnorm(length(th0), 0, 0.3)))
  best <- list(crit = Inf)
  src <- ""
  for (i in seq_along(starts)) for (ctl in c("bobyqa", "nm")) {
    r <- tryCatch(fit(if (ctl == "bobyqa") bobyqa else nm, starts[[i]]), error = function(e) NULL)
    if (!is.null(r) && r$crit < best$crit) { best <- r; src <- paste0(ctl, "@start", i) }
  }
  out[[length(out) + 1]] <- list(
    id = cs$id, seed = cs$seed, formula = cs$formula, reml = cs$reml, weights = cs$weights,
    data = cs$data, best_criterion = best$crit, best_theta = best$theta, best_by = src,
    default_criterion = default$crit, default_theta = default$theta)
}
message(length(out), " cases in ", format(Sys.time() - t0))
res <- list(lme4 = as.character(packageVersion("lme4")), R = R.version.string,
            generator = "tests/oracle/differential_designs.py", cases = out)
con <- gzfile("tests/reference/differential.json.gz", "w")
writeLines(toJSON(res, auto_unbox = TRUE, digits = I(17)), con)
close(con)
