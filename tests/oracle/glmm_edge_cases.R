# lme4 on the GLMM edge cases of issue 14 (level checks, constant responses, separation,
# Gamma scale); writes tests/reference/glmm_edge_cases.json.gz.  Run from the repo root:
#   Rscript tests/oracle/glmm_edge_cases.R
# Factors have sorted levels (numbers numerically), as mmfast builds them.  Every fit is stored
# with lme4's defaults ("default") and with tight settings ("tight": bobyqa in both stages,
# rhoend 1e-12, tolPwrss 1e-10), the better estimate of the optimum.
suppressMessages({library(lme4); library(jsonlite)})
load_data <- function(name) read.csv(gzfile(file.path("src/mmfast/datasets/data", paste0(name, ".csv.gz"))))
as_fac <- function(x) factor(x, levels = sort(unique(x)))
tight <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5), tolPwrss = 1e-10)
capture <- function(expr) {
  warns <- character()
  res <- tryCatch(withCallingHandlers(expr, warning = function(w) {
    warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") }),
    error = function(e) structure(conditionMessage(e), class = "fit_error"))
  list(value = res, warnings = warns)
}
summarise <- function(cap) {
  m <- cap$value
  if (inherits(m, "fit_error")) return(list(error = unclass(m), warnings = cap$warnings))
  se <- suppressWarnings(sqrt(diag(as.matrix(vcov(m)))))
  list(fixef_names = names(fixef(m)), fixef = unname(fixef(m)), se = unname(se),
       theta_names = names(getME(m, "theta")), theta = unname(getME(m, "theta")),
       sigma = sigma(m), logLik = as.numeric(logLik(m)), nobs = nobs(m),
       ngrps = as.list(ngrps(m)), singular = isSingular(m), warnings = cap$warnings,
       conv_messages = m@optinfo$conv$lme4$messages)
}
fit_both <- function(formula, data, family, ...) list(
  formula = formula,
  default = summarise(capture(glmer(as.formula(formula), data, family, ...))),
  tight = summarise(capture(glmer(as.formula(formula), data, family, control = tight, ...))))

cbpp <- load_data("cbpp"); cbpp$herd <- as_fac(cbpp$herd); cbpp$period <- as_fac(cbpp$period)
cbpp$obs <- as_fac(seq_len(nrow(cbpp)))
grouse <- load_data("grouseticks")
for (v in c("INDEX", "BROOD", "YEAR", "LOCATION")) grouse[[v]] <- as_fac(grouse[[v]])
water <- load_data("waterlick"); water$mouseID <- as_fac(water$mouseID)
# one row per mouse: licks out of trials
agg <- aggregate(lick ~ mouseID, water, sum); agg$trials <- as.vector(table(water$mouseID))

out <- list()
## 1. level checks: as many levels as observations (glmer's defaults allow it)
out$cbpp_obs <- fit_both("cbind(incidence, size - incidence) ~ period + (1 | obs)", cbpp, binomial)
out$cbpp_herd_obs <- fit_both("cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)", cbpp, binomial)
out$grouse_obs <- fit_both("TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX)", grouse, poisson)
out$grouse_obs_only <- fit_both("TICKS ~ YEAR + cHEIGHT + (1 | INDEX)", grouse, poisson)
out$water_per_mouse <- fit_both("cbind(lick, trials - lick) ~ 1 + (1 | mouseID)", agg, binomial)
# the controls: "stop" for nlev/nRE still allows nlev == n and q == n in glmer (allow.n = TRUE)
out$cbpp_obs_stop <- summarise(capture(glmer(cbind(incidence, size - incidence) ~ period + (1 | obs), cbpp,
  binomial, control = glmerControl(check.nobs.vs.nlev = "stop", check.nobs.vs.nRE = "stop"))))
slope <- cbind(incidence, size - incidence) ~ 1 + (period | obs)
out$nre_stop <- summarise(capture(glmer(slope, cbpp, binomial, control = glmerControl(check.nobs.vs.nRE = "stop"))))
out$nre_warning <- list(warnings = capture(glmer(slope, cbpp, binomial,
  control = glmerControl(check.nobs.vs.nRE = "warning")))$warnings)
one <- water; one$one <- factor(1)
out$one_level <- summarise(capture(glmer(lick ~ dff + (1 | one), one, binomial)))
out$lmer_obs <- summarise(capture(lmer(TICKS ~ YEAR + (1 | INDEX), grouse)))

## 2. edge cases
w0 <- water; w0$lick <- 0
out$const_binomial_0 <- summarise(capture(glmer(lick ~ dff + (1 | mouseID), w0, binomial)))
w0$lick <- 1
out$const_binomial_1 <- summarise(capture(glmer(lick ~ dff + (1 | mouseID), w0, binomial)))
g0 <- grouse; g0$TICKS <- 0
out$const_poisson_0 <- summarise(capture(glmer(TICKS ~ YEAR + (1 | BROOD), g0, poisson)))
# quasi-complete separation: every trial with dff > 10 ("high", the reference level) a lick
sep <- water
sep$band <- as_fac(ifelse(sep$dff > 10, "high", ifelse(sep$dff > 0, "mid", "low")))
sep$lick[sep$band == "high"] <- 1
out$separation <- fit_both("lick ~ band + (1 | mouseID)", sep, binomial)
out$separation_nagq0 <- fit_both("lick ~ band + (1 | mouseID)", sep, binomial, nAGQ = 0)
sep$blk <- as_fac((seq_len(nrow(sep)) - 1) %% 16)  # a second, crossed grouping factor
out$separation_two_terms <- fit_both("lick ~ band + (1 | mouseID) + (1 | blk)", sep, binomial)
# probit, one separating row: z = 1 on the first lick only
pr <- water; pr$z <- 0; pr$z[which(pr$lick == 1)[1]] <- 1
out$probit_one_row <- fit_both("lick ~ dff + z + (1 | mouseID)", pr, binomial(link = "probit"))
out$probit_one_row$z_row <- which(pr$lick == 1)[1] - 1  # 0-based

## 3. Gamma(inverse): the same data in two units
set.seed(14)
ng <- 20; nper <- 10; g <- rep(seq_len(ng), each = nper); x <- runif(ng * nper)
b <- rnorm(ng, 0, 0.15); eta <- 1 + 0.5 * x + b[g]
gam <- data.frame(y = signif(rgamma(length(eta), shape = 4, rate = 4 * eta), 6), x = signif(x, 6), g = as_fac(g))
out$gamma_data <- list(y = gam$y, x = gam$x, g = as.integer(as.character(gam$g)))
for (s in c(1, 1e-6, 1e6)) {
  gam$ys <- gam$y * s
  key <- paste0("gamma_inverse_scale_", format(s, scientific = TRUE))
  out[[key]] <- c(fit_both("ys ~ x + (1 | g)", gam, Gamma(link = "inverse")), list(scale = s))
}
gam$ys <- gam$y * 1e-6
out[["gamma_log_scale_1e-06"]] <- c(fit_both("ys ~ x + (1 | g)", gam, Gamma(link = "log")), list(scale = 1e-6))

out[["_meta"]] <- list(script = "tests/oracle/glmm_edge_cases.R",
                       tight = "glmerControl(optimizer = 'bobyqa', optCtrl = list(rhoend = 1e-12, maxfun = 1e5), tolPwrss = 1e-10)",
                       lme4 = as.character(packageVersion("lme4")), R = R.version.string)
con <- gzfile("tests/reference/glmm_edge_cases.json.gz", "w")
writeLines(toJSON(out, auto_unbox = TRUE, digits = 15, null = "null", na = "null"), con)
close(con)
