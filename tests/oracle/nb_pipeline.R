# glmmTMB (nbinom2) and lme4's glmer.nb on simulated per-gene NB GLMMs, the model of
# fit_many(family="negative_binomial"): count ~ condition + offset(log(size_factor)) + (1 | donor).
# Writes tests/reference/nb_pipeline.json.gz (the cells, the counts and the fits).  Run from the
# repo root:  Rscript tests/oracle/nb_pipeline.R
# 30 genes x 600 cells x 12 donors (6 per condition): log-normal means, theta in 0.5..10,
# donor sd 0..0.5, plus edge genes: all zeros, Poisson counts (theta -> infinity), two counts
# in total, no donor effect.  Every gene is fitted with glmmTMB's defaults and with tight
# optimiser tolerances ("tight": the better estimate of the optimum).
suppressMessages({library(glmmTMB); library(lme4); library(jsonlite)})
set.seed(17)
ncell <- 600; ndonor <- 12
donor <- rep(sprintf("d%02d", seq_len(ndonor)), each = ncell / ndonor)
condition <- ifelse(as.integer(factor(donor)) <= ndonor / 2, "control", "treated")
size_factor <- exp(rnorm(ncell, 0, 0.35))
cells <- data.frame(donor = factor(donor), condition = factor(condition), size_factor = size_factor)
sim <- function(mean, theta, sd, effect) {
  u <- rnorm(ndonor, 0, sd)
  mu <- size_factor * mean * exp(effect * (condition == "treated") + u[as.integer(cells$donor)])
  if (is.infinite(theta)) rpois(ncell, mu) else rnbinom(ncell, mu = mu, size = theta)
}
G <- 26
counts <- t(sapply(seq_len(G), function(g) sim(exp(rnorm(1, 0.5, 1.2)), runif(1, 0.5, 10), runif(1, 0, 0.5),
                                              rnorm(1, 0, 0.4))))
counts <- rbind(counts,
  zero = rep(0, ncell),                      # all zeros: no fit
  poisson = sim(3, Inf, 0.3, 0.2),           # theta -> infinity
  sparse = replace(rep(0, ncell), c(7, 400), 1),  # two counts
  nodonor = sim(2, 2, 0, 0.3))               # donor sd 0 (often singular)
rownames(counts) <- c(sprintf("gene%02d", seq_len(G)), "zero", "poisson", "sparse", "nodonor")
tight <- glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-14, x.tol = 1e-12))
capture <- function(expr) {
  warns <- character()
  res <- tryCatch(withCallingHandlers(expr, warning = function(w) {
    warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") }),
    error = function(e) structure(conditionMessage(e), class = "fit_error"))
  list(value = res, warnings = warns)
}
tmb_summary <- function(cap) {
  m <- cap$value
  if (inherits(m, "fit_error")) return(list(error = unclass(m), warnings = cap$warnings))
  se <- suppressWarnings(sqrt(diag(vcov(m)$cond)))
  list(fixef = unname(fixef(m)$cond), se = unname(se), fixef_names = names(fixef(m)$cond),
       sd_donor = unname(sqrt(VarCorr(m)$cond$donor[1])), theta = sigma(m),
       logLik = as.numeric(logLik(m)), convergence = m$fit$convergence, pdHess = m$sdr$pdHess,
       warnings = cap$warnings)
}
nb_summary <- function(cap) {
  m <- cap$value
  if (inherits(m, "fit_error")) return(list(error = unclass(m), warnings = cap$warnings))
  list(fixef = unname(fixef(m)), sd_donor = unname(getME(m, "theta")), theta = getME(m, "glmer.nb.theta"),
       logLik = as.numeric(logLik(m)), warnings = cap$warnings)
}
f <- count ~ condition + offset(log(size_factor)) + (1 | donor)
fits <- list()
for (g in rownames(counts)) {
  d <- cells; d$count <- counts[g, ]
  fits[[g]] <- list(
    default = tmb_summary(capture(glmmTMB(f, d, family = nbinom2))),
    tight = tmb_summary(capture(glmmTMB(f, d, family = nbinom2, control = tight))),
    glmer_nb = nb_summary(capture(glmer.nb(f, d))))
}
out <- list(formula = deparse(f), glmmTMB = as.character(packageVersion("glmmTMB")),
            lme4 = as.character(packageVersion("lme4")),
            cells = list(donor = donor, condition = condition, size_factor = size_factor),
            genes = rownames(counts), counts = unname(counts), fits = fits)
con <- gzfile("tests/reference/nb_pipeline.json.gz", "w")
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null"), con)
close(con)
