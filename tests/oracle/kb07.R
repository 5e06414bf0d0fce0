# lme4 on benchmarks/workloads.py's kb07-like design (issue 19): 56 subjects x 32 items, the
# 2x2x2 within conditions, all 8 columns random for subject and item (72 θ), ML, lme4's
# default control (BOBYQA; ~1,000 s, singular).  Data: tests/reference/kb07.csv.gz, written
# from workloads.kb07(1792).  Writes tests/reference/kb07.json.gz.
# Run from the repo root:  Rscript tests/oracle/kb07.R
suppressMessages({library(lme4); library(jsonlite)})
d <- read.csv(gzfile("tests/reference/kb07.csv.gz"))
d$subj <- factor(d$subj, levels = sort(unique(d$subj)))
d$item <- factor(d$item, levels = sort(unique(d$item)))
f <- rt ~ S + P + C + SP + SC + PC + SPC + (S + P + C + SP + SC + PC + SPC | subj) +
  (S + P + C + SP + SC + PC + SPC | item)
w <- character(0)
t0 <- proc.time()[["elapsed"]]
m <- withCallingHandlers(lmer(f, d, REML = FALSE),
  warning = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleWarning") },
  message = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleMessage") })
out <- list(theta = unname(getME(m, "theta")), sigma = sigma(m), fixef = unname(fixef(m)),
            deviance = unname(m@devcomp$cmp["dev"]), logLik = as.numeric(logLik(m)),
            singular = isSingular(m), feval = m@optinfo$feval,
            seconds = proc.time()[["elapsed"]] - t0, warnings = w,
            lme4 = as.character(packageVersion("lme4")))
con <- gzfile("tests/reference/kb07.json.gz", "w")
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(17)), con)
close(con)
cat(sprintf("logLik %.8f, feval %d, singular %s, %.1f s\n", out$logLik, out$feval,
            out$singular, out$seconds))
