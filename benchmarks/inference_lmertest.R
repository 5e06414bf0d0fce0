# lmerTest's Satterthwaite and pbkrtest's Kenward-Roger df, timed in the same run as mmfast's.
#   Rscript benchmarks/inference_lmertest.R cases.json out.json
# cases.json: [{case, data_path (gzipped CSV), formula, REML, factor_levels, kr (bool)}]
# For each case: the fit (lme4::lmer), then lmerTest's derivatives and summary
# (as_lmerModLmerTest + summary(ddf = "Satterthwaite")), then summary(ddf = "Kenward-Roger").
suppressMessages({library(lme4); library(lmerTest); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
cases <- fromJSON(args[1], simplifyVector = FALSE)
elapsed <- function(expr) unname(system.time(expr)["elapsed"])
out <- list()
for (cs in cases) {
  d <- read.csv(gzfile(cs$data_path))
  for (v in names(cs$factor_levels)) {
    d[[v]] <- factor(as.character(d[[v]]), levels = unlist(cs$factor_levels[[v]]))
  }
  ctrl <- lmerControl(check.nobs.vs.nRE = "ignore")
  m <- NULL
  fit_s <- elapsed(m <- lme4::lmer(as.formula(cs$formula), d, REML = cs$REML, control = ctrl))
  mt <- NULL
  sat_s <- elapsed({mt <- as_lmerModLmerTest(m); s <- summary(mt, ddf = "Satterthwaite")})
  kr_s <- NA
  if (isTRUE(cs$kr)) {
    mk <- if (cs$REML) mt else as_lmerModLmerTest(update(m, REML = TRUE))
    kr_s <- elapsed(s2 <- summary(mk, ddf = "Kenward-Roger"))
  }
  out[[length(out) + 1]] <- list(case = cs$case, fit_s = fit_s, satterthwaite_s = sat_s,
                                 kenward_roger_s = kr_s)
  cat(sprintf("[lmerTest] %s: fit %.3f s, Satterthwaite %.3f s, KR %s s\n", cs$case, fit_s, sat_s,
              format(kr_s)))
}
writeLines(toJSON(out, auto_unbox = TRUE, na = "null", digits = 6), args[2])
