# lme4 on sleepstudy with the response or the random-slope covariate on extreme scales;
# writes tests/reference/scale.json.gz.  Run from the repo root:  Rscript tests/oracle/scale.R
suppressMessages({library(lme4); library(jsonlite)})
d0 <- read.csv(gzfile("src/mmfast/datasets/data/sleepstudy.csv.gz"))
d0$Subject <- factor(d0$Subject, levels = sort(unique(d0$Subject)))
variants <- list(
  base = function(d) d,
  y_plus_1e12 = function(d) { d$Reaction <- d$Reaction + 1e12; d },
  y_times_1e200 = function(d) { d$Reaction <- d$Reaction * 1e200; d },
  y_times_1e_200 = function(d) { d$Reaction <- d$Reaction * 1e-200; d },
  days_times_1e_7 = function(d) { d$Days <- d$Days * 1e-7; d },
  days_times_1e5 = function(d) { d$Days <- d$Days * 1e5; d })
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
out <- list()
for (v in names(variants)) {
  d <- variants[[v]](d0)
  w <- character(0)
  r <- withCallingHandlers(tryCatch({
    m <- lmer(Reaction ~ Days + (Days | Subject), d, control = ctrl)
    list(theta = unname(getME(m, "theta")), sigma = sigma(m), fixef = unname(fixef(m)),
         REML = unname(m@devcomp$cmp["REML"]))
  }, error = function(e) list(error = conditionMessage(e))),
  warning = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleWarning") },
  message = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleMessage") })
  r$warnings <- w
  out[[v]] <- r
}
out$lme4 <- as.character(packageVersion("lme4"))
con <- gzfile("tests/reference/scale.json.gz", "w")
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(17)), con)
close(con)
