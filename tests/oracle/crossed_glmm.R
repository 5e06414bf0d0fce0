# lme4 on benchmarks/workloads.py's crossed binomial design at a test size (issue 19): 1,000
# subjects x 400 items, 12 items each (12,000 rows; x rounded to 1e-6), y ~ 1 + x + (1 | subj)
# + (1 | item), Laplace.  lme4's default fit, then a tight refit from it (BOBYQA, rhoend 1e-10)
# (lme4's reported deviance takes log|L| one PIRLS iterate before the mode: with 12 rows a
# subject it sits ~0.05 above the Laplace deviance at the mode), and glmmTMB (the exact Laplace
# approximation by automatic differentiation) as the reference optimum.  Data: tests/reference/crossed_glmm.csv.gz, written from
# workloads.crossed_binomial((1000, 400, 12)).  Writes tests/reference/crossed_glmm.json.gz.
# Run from the repo root:  Rscript tests/oracle/crossed_glmm.R
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
d <- read.csv(gzfile("tests/reference/crossed_glmm.csv.gz"))
d$subj <- factor(d$subj, levels = sort(unique(d$subj)))
d$item <- factor(d$item, levels = sort(unique(d$item)))
f <- y ~ 1 + x + (1 | subj) + (1 | item)
w <- character(0)
quiet <- function(expr) withCallingHandlers(expr,
  warning = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleWarning") },
  message = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleMessage") })
t0 <- proc.time()[["elapsed"]]
m <- quiet(glmer(f, d, binomial))
secs <- proc.time()[["elapsed"]] - t0
tight <- quiet(update(m, start = list(theta = getME(m, "theta"), fixef = fixef(m)),
  control = glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))))
out <- list(theta = unname(getME(m, "theta")), fixef = unname(fixef(m)),
            logLik = as.numeric(logLik(m)), feval = m@optinfo$feval, seconds = secs,
            tight = list(theta = unname(getME(tight, "theta")), fixef = unname(fixef(tight)),
                         logLik = as.numeric(logLik(tight)),
                         se = unname(sqrt(diag(as.matrix(vcov(tight)))))),
            warnings = w, lme4 = as.character(packageVersion("lme4")))
tmb <- glmmTMB(f, d, family = binomial)
out$glmmTMB <- list(logLik = as.numeric(logLik(tmb)), fixef = unname(fixef(tmb)$cond),
                    sd = unname(sapply(VarCorr(tmb)$cond, function(v) attr(v, "stddev"))),
                    se = unname(sqrt(diag(vcov(tmb)$cond))),
                    version = as.character(packageVersion("glmmTMB")))
con <- gzfile("tests/reference/crossed_glmm.json.gz", "w")
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(17)), con)
close(con)
cat(sprintf("logLik %.8f (tight %.8f, glmmTMB %.8f), feval %d, %.1f s\n", out$logLik,
            out$tight$logLik, out$glmmTMB$logLik, out$feval, out$seconds))
