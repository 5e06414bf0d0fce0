# Nakagawa-Schielzeth R² (performance::r2_nakagawa) and its variance components
# (insight::get_variance) for LMMs and GLMMs; writes tests/reference/r2.json.gz.
# Run from the repo root:  Rscript tests/oracle/r2.R
# "by_hand" is insight's own random-effect variance (mean of diag(Z Sigma Z') with Z taken from
# the fixed-effects model matrix) summed over every term, recorded because insight 0.19 keeps
# only the first of several terms on one grouping factor ((Days || Subject)).
suppressMessages({library(lme4); library(performance); library(jsonlite)})
rd <- function(n) read.csv(gzfile(sprintf("src/mmfast/datasets/data/%s.csv.gz", n)))
ss <- rd("sleepstudy"); ss$Subject <- factor(ss$Subject)
pen <- rd("Penicillin")
ex1 <- rd("ex1"); ex1$treatment <- factor(ex1$treatment_idx); ex1$midx <- factor(ex1$midx)
cbpp <- rd("cbpp"); cbpp$period <- factor(cbpp$period); cbpp$herd <- factor(cbpp$herd)
cbpp$obs <- factor(seq_len(nrow(cbpp)))
gt <- rd("grouseticks"); for (v in c("YEAR", "BROOD", "LOCATION", "INDEX")) gt[[v]] <- factor(gt[[v]])
sp <- rd("spikes"); sp$mouse <- factor(sp$mouse); sp$logdur <- log(sp$duration)
cake <- rd("cake"); cake$recipe <- factor(cake$recipe); cake$replicate <- factor(cake$replicate)
d2 <- rd("Dyestuff2")
# LMMs with tight optimiser controls (the optimum mmfast finds); GLMMs with glmer's defaults, as
# performance's users fit them (their optima, and the Poisson null models', differ from mmfast's
# slightly higher maxima in the 4th digit, so fixef, theta and the null model's intercept are
# recorded to check each variance component at R's own estimates)
lc <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
fits <- list(
  sleepstudy_slope = function() lmer(Reaction ~ Days + (Days | Subject), ss, control = lc),
  sleepstudy_uncorr = function() lmer(Reaction ~ Days + (Days || Subject), ss, control = lc),
  penicillin = function() lmer(diameter ~ 1 + (1 | plate) + (1 | sample), pen, control = lc),
  ex1_ml = function() lmer(res ~ treatment + (1 | midx), ex1, REML = FALSE, control = lc),
  cbpp_logit = function() glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial),
  cbpp_probit = function() glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                                 binomial(link = "probit")),
  cbpp_obs = function() glmer(cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs),
                              cbpp, binomial),
  grouse_poisson = function() glmer(TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION), gt, poisson),
  grouse_obs = function() glmer(TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION),
                                gt, poisson),
  spikes_slope = function() glmer(count ~ condition + stim + (stim | mouse), sp, poisson, offset = logdur),
  cake_gamma_log = function() glmer(angle ~ recipe + temperature + (1 | replicate), cake, Gamma(link = "log")),
  dyestuff2_singular = function() lmer(Yield ~ 1 + (1 | Batch), d2, control = lc))
by_hand <- function(m) {
  X <- getME(m, "X"); vc <- VarCorr(m); n <- nrow(X); nr <- sapply(ranef(m), nrow)
  obs <- names(nr)[nr == n]
  sum(sapply(names(vc), function(g) {
    if (sub("\\.[0-9]+$", "", g) %in% obs) return(0)
    S <- vc[[g]]; rn <- rownames(S)[rownames(S) %in% colnames(X)]
    Z <- X[, rn, drop = FALSE]; sum(diag(crossprod(Z %*% S[rn, rn, drop = FALSE], Z))) / n
  }))
}
out <- list()
for (id in names(fits)) {
  m <- suppressWarnings(suppressMessages(fits[[id]]()))
  r2 <- suppressWarnings(suppressMessages(r2_nakagawa(m)))
  v <- suppressWarnings(suppressMessages(insight::get_variance(m)))
  n0 <- if (family(m)$family == "poisson") suppressWarnings(insight::null_model(m)) else NULL
  na <- function(x) if (is.null(x) || length(x) == 0 || is.na(x)) NA else unname(x)
  out[[id]] <- list(marginal = na(r2$R2_marginal), conditional = na(r2$R2_conditional),
                    var_fixed = na(v$var.fixed), var_random = na(v$var.random),
                    var_residual = na(v$var.residual), var_distribution = na(v$var.distribution),
                    var_dispersion = na(v$var.dispersion), var_random_all_terms = by_hand(m),
                    singular = isSingular(m, tol = 1e-5), theta = unname(getME(m, "theta")),
                    fixef = unname(fixef(m)), sigma = sigma(m), logLik = as.numeric(logLik(m)),
                    null_intercept = if (is.null(n0)) NA else unname(fixef(n0)),
                    null_logLik = if (is.null(n0)) NA else as.numeric(logLik(n0)))
}
out$versions <- list(performance = as.character(packageVersion("performance")),
                     insight = as.character(packageVersion("insight")),
                     lme4 = as.character(packageVersion("lme4")))
con <- gzfile("tests/reference/r2.json.gz", "w")
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(17), na = "null"), con)
close(con)
