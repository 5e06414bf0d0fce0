# lme4 on the 2025 InstEval model of Bates, Alday & Kokandakar (issue 19):
# y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept) + (0 + service | dept), ML, on the bundled
# InstEval (src/mmfast/datasets/data/InstEval.csv.gz).  lme4's default fit stops with a
# convergence warning (max|grad| ~0.002), so it is refitted from its own optimum with BOBYQA to
# rhoend 1e-10: that tight optimum is the reference.  Writes tests/reference/insteval2025.json.gz.
# Run from the repo root:  Rscript tests/oracle/insteval2025.R
suppressMessages({library(lme4); library(jsonlite)})
d <- read.csv(gzfile("src/mmfast/datasets/data/InstEval.csv.gz"))
for (v in c("s", "d", "dept")) d[[v]] <- factor(d[[v]], levels = sort(unique(d[[v]])))
d$service <- factor(d$service, levels = c(0, 1))
f <- y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept) + (0 + service | dept)
w <- character(0)
quiet <- function(expr) withCallingHandlers(expr,
  warning = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleWarning") },
  message = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleMessage") })
t0 <- proc.time()[["elapsed"]]
m <- quiet(lmer(f, d, REML = FALSE))
secs <- proc.time()[["elapsed"]] - t0
opt <- list(rhobeg = 1e-3, rhoend = 1e-10, maxfun = 1e6)
tight <- quiet(lmer(f, d, REML = FALSE, start = getME(m, "theta"),
                    control = lmerControl(optimizer = "bobyqa", optCtrl = opt)))
vc <- as.data.frame(VarCorr(tight))
out <- list(formula = deparse(f, width.cutoff = 500L), nobs = nrow(d),
            default = list(logLik = as.numeric(logLik(m)), theta = unname(getME(m, "theta")),
                           feval = m@optinfo$feval, seconds = secs),
            theta = unname(getME(tight, "theta")), sigma = sigma(tight),
            fixef = unname(fixef(tight)), logLik = as.numeric(logLik(tight)),
            deviance = unname(tight@devcomp$cmp["dev"]), feval_tight = tight@optinfo$feval,
            vcov = unname(as.matrix(vcov(tight))),
            vc_sdcor = vc$sdcor, warnings = unique(w),
            lme4 = as.character(packageVersion("lme4")))
con <- gzfile("tests/reference/insteval2025.json.gz", "w")
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(17)), con)
close(con)
cat(sprintf("logLik %.8f (default %.8f), feval %d + %d, %.1f s\n", out$logLik,
            out$default$logLik, out$default$feval, out$feval_tight, secs))
