# glmmTMB 1.1.5 references for G-side covariance structures (tests/test_structures.py).
# Per case: the data (simulated cases, fixed seeds), logLik, fixef, SEs (glmmTMB's and the GLS
# ones (X'V^-1 X)^-1 at glmmTMB's estimate), the SDs and correlation matrix of the structured
# term, and the logLik of a refit from glmmTMB's optimum with tight tolerances (the better of
# the two is the target); for the GLMM cases confint(method = "profile").
# Run from the repo root:  Rscript tests/oracle/structures.R  (writes tests/reference/structures.json.gz).
suppressMessages({library(glmmTMB); library(jsonlite)})
ss <- read.csv(gzfile("src/mmfast/datasets/data/sleepstudy.csv.gz"))
ss$Subject <- factor(ss$Subject, levels = sort(unique(ss$Subject)))
ss$fDays <- factor(ss$Days, levels = 0:9)
ss$fPeriod <- factor(ss$Days %/% 2, levels = 0:4)  # two-day periods: a toep with an identified residual

## ou on irregular times: 40 subjects, each seen at 6 of 12 irregular times
set.seed(16)
tgrid <- sort(round(cumsum(runif(12, 0.2, 1.5)), 2))
ou_d <- do.call(rbind, lapply(1:40, function(g) {
  tt <- sort(sample(tgrid, 6))
  S <- 1.5^2 * exp(-0.6 * abs(outer(tt, tt, "-")))
  b <- drop(t(chol(S)) %*% rnorm(6))
  x <- rnorm(6)
  data.frame(g = g, time = tt, x = x, y = 2 + 0.5 * x + b + rnorm(6, sd = 0.7))
}))
ou_d$g <- factor(ou_d$g)
ou_d$times <- numFactor(ou_d$time)

## ar1 Poisson GLMM: 30 neurons x 8 blocks x 5 trials, ar1 over blocks within a neuron
set.seed(17)
nb <- 8
glmm_d <- do.call(rbind, lapply(1:30, function(g) {
  S <- 0.5^2 * 0.7^abs(outer(1:nb, 1:nb, "-"))
  b <- drop(t(chol(S)) %*% rnorm(nb))
  blk <- rep(1:nb, each = 5)
  stim <- rbinom(nb * 5, 1, 0.5)
  data.frame(neuron = g, block = blk, stim = stim, count = rpois(nb * 5, exp(0.8 + 0.3 * stim + b[blk])))
}))
glmm_d$neuron <- factor(glmm_d$neuron)
glmm_d$fblock <- factor(glmm_d$block, levels = 1:nb)
glmm_d$batch <- factor((as.integer(glmm_d$neuron) - 1) %/% 5)  # recording sessions of 5 neurons

## singular: a random slope with no spread (diag keeps it apart from the intercept)
set.seed(18)
sing_d <- do.call(rbind, lapply(1:25, function(g) {
  x <- round(runif(8, 0, 4), 2)
  data.frame(g = g, x = x, y = 1 + 0.4 * x + rnorm(1, sd = 1) + rnorm(8, sd = 0.5))
}))
sing_d$g <- factor(sing_d$g)

cases <- list(
  list(id = "sleep_ar1", nsd = 1, d = ss, f = Reaction ~ Days + ar1(0 + fDays | Subject),
       py = "Reaction ~ Days + ar1(0 + factor(Days) | Subject)", reml = FALSE),
  list(id = "sleep_ar1_reml", nsd = 1, d = ss, f = Reaction ~ Days + ar1(0 + fDays | Subject),
       py = "Reaction ~ Days + ar1(0 + factor(Days) | Subject)", reml = TRUE),
  list(id = "sleep_cs", nsd = 10, d = ss, f = Reaction ~ Days + cs(0 + fDays | Subject),
       py = "Reaction ~ Days + cs(0 + factor(Days) | Subject)", reml = FALSE),
  list(id = "sleep_toep", nsd = 10, d = ss, f = Reaction ~ Days + toep(0 + fDays | Subject),
       py = "Reaction ~ Days + toep(0 + factor(Days) | Subject)", reml = FALSE),
  list(id = "sleep_toep_periods", nsd = 5, d = ss, f = Reaction ~ Days + toep(0 + fPeriod | Subject),
       py = "Reaction ~ Days + toep(0 + factor(period) | Subject)", reml = FALSE),
  list(id = "sleep_diag", nsd = 2, d = ss, f = Reaction ~ Days + diag(Days | Subject),
       py = "Reaction ~ Days + diag(Days | Subject)", reml = FALSE),
  list(id = "ou_irregular", nsd = 1, d = ou_d, f = y ~ x + ou(times + 0 | g),
       py = "y ~ x + ou(time + 0 | g)", reml = FALSE, save = c("g", "time", "x", "y")),
  list(id = "glmm_ar1_poisson", nsd = 1, d = glmm_d, f = count ~ stim + ar1(0 + fblock | neuron),
       py = "count ~ stim + ar1(0 + factor(block) | neuron)", reml = FALSE, family = "poisson",
       save = c("neuron", "block", "stim", "count"), profile = TRUE),
  list(id = "glmm_two_terms", nsd = 1, d = glmm_d, f = count ~ stim + (1 | batch) + ar1(0 + fblock | neuron),
       py = "count ~ stim + (1 | batch) + ar1(0 + factor(block) | neuron)", reml = FALSE, family = "poisson",
       term = "neuron", save = c("neuron", "block", "stim", "count", "batch"), profile = TRUE),
  list(id = "singular_diag", nsd = 2, d = sing_d, f = y ~ x + diag(1 + x | g),
       py = "y ~ x + diag(1 + x | g)", reml = FALSE, save = c("g", "x", "y"))
)

gls_se <- function(m, d) {  # (X'V^-1 X)^-1 at glmmTMB's estimate, Gaussian only
  X <- getME(m, "X"); Z <- as.matrix(getME(m, "Z"))
  vc <- VarCorr(m)$cond[[1]]
  ng <- nlevels(d[[names(VarCorr(m)$cond)[1]]])
  G <- kronecker(diag(ng), vc)
  V <- Z %*% G %*% t(Z) + sigma(m)^2 * diag(nrow(X))
  sqrt(diag(solve(t(X) %*% solve(V, X))))
}

out <- list()
for (cs in cases) {
  fam <- if (is.null(cs$family)) gaussian() else get(cs$family)()
  m <- glmmTMB(cs$f, data = cs$d, family = fam, REML = cs$reml)
  tight <- glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-15, x.tol = 0))
  refit <- function(theta, betad = unname(m$fit$par[names(m$fit$par) == "betad"])) {
    st <- list(beta = fixef(m)$cond, theta = theta)
    if (is.null(cs$family)) st$betad <- betad
    tryCatch(glmmTMB(cs$f, data = cs$d, family = fam, REML = cs$reml, start = st, control = tight),
             error = function(e) NULL)  # a start where the likelihood is NaN: no refit
  }
  th <- getME(m, "theta")
  m2 <- refit(th)  # tight tolerances from glmmTMB's optimum
  th3 <- th; th3[length(th)] <- 1  # and from another start (ar1, cs, ou: a positive correlation)
  m3 <- refit(th3)
  # and from a moment start: half the residual variance each to the residual and the SDs
  # (glmmTMB's default start sends sleepstudy's ar1 residual SD to 0 at a worse optimum)
  r <- if (is.null(cs$family)) resid(lm(glmmTMB:::splitForm(cs$f)$fixedFormula, cs$d)) else NULL
  th4 <- rep(0, length(th)); th4[seq_len(cs$nsd)] <- if (is.null(r)) log(0.5) else log(sd(r) / sqrt(2))
  m4 <- if (is.null(r)) refit(th4) else refit(th4, betad = log(var(r) / 2))
  ll <- function(fit) if (is.null(fit)) NA else -fit$fit$objective  # logLik() is NA without a PD Hessian
  best <- m
  for (alt in list(m2, m3, m4)) if (!is.null(alt) && is.finite(ll(alt)) && ll(alt) > ll(best)) best <- alt
  vcs <- VarCorr(best)$cond
  vc <- vcs[[if (is.null(cs$term)) 1 else cs$term]]
  gaussian_case <- is.null(cs$family)
  rec <- list(
    formula_r = deparse(cs$f), formula = cs$py, reml = cs$reml,
    family = if (gaussian_case) "gaussian" else cs$family,
    loglik = ll(m), loglik_tight = max(ll(m2), ll(m3), ll(m4), na.rm = TRUE), loglik_best = ll(best),
    fixef = as.list(fixef(best)$cond), se = as.list(suppressWarnings(sqrt(diag(vcov(best)$cond)))),
    se_gls = if (gaussian_case) as.list(setNames(gls_se(best, cs$d), names(fixef(best)$cond))) else NULL,
    sigma = if (gaussian_case) sigma(best) else NULL,
    sd = as.numeric(attr(vc, "stddev")), cor = unname(as.matrix(attr(vc, "correlation"))),
    theta = as.numeric(getME(best, "theta")), pdHess = best$sdr$pdHess,
    sd_terms = lapply(vcs, function(v) as.numeric(attr(v, "stddev"))))
  if (isTRUE(cs$profile)) {  # profile intervals of every fixed effect and theta on glmmTMB's
    # internal scale (beta, log SD, ar1's phi with rho = phi / sqrt(1 + phi^2)): monotone maps, so
    # the bounds transform exactly; tmbprofile interpolates its profile linearly between points
    # per parameter: tmbprofile fails on some (NA in its spline), recorded as NA
    ci <- t(sapply(seq_along(best$fit$par), function(k) tryCatch(
      unname(confint(best, method = "profile", parm = k)[1, 1:2]), error = function(e) c(NA, NA))))
    rec$profile <- list(par = names(best$fit$par), estimate = unname(best$fit$par),
                        lower = unname(ci[, 1]), upper = unname(ci[, 2]))
  }
  if (!is.null(cs$save)) rec$data <- as.list(lapply(cs$d[cs$save], function(v) if (is.factor(v)) as.integer(as.character(v)) else v))
  out[[cs$id]] <- rec
  cat(cs$id, rec$loglik, rec$loglik_tight, "\n")
}
out[["_meta"]] <- list(script = "tests/oracle/structures.R",
                       glmmTMB = as.character(packageVersion("glmmTMB")), R = R.version.string)
con <- gzfile("tests/reference/structures.json.gz", "w")
writeLines(toJSON(out, digits = 15, auto_unbox = TRUE, na = "null", null = "null"), con)
close(con)
cat("written tests/reference/structures.json.gz\n")
