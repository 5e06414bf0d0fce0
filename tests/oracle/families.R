# R's family objects (stats 4.2) evaluated on a grid, extremes included: linkfun, linkinv,
# mu.eta, variance, dev.resids and aic for every family x link mmfast offers.
# Writes tests/reference/families.json.gz.  Run from the repo root:  Rscript tests/oracle/families.R
suppressMessages(library(jsonlite))
# jsonlite keeps 15 digits (1 - eps would become 1): every number is written as a "%.17g" string
# ("Inf", "-Inf", "NaN" included), which Python's float() reads back exactly.
num <- function(x) sprintf("%.17g", x)
eps <- .Machine$double.eps
eta_all <- c(-800, -710, -700, -40, -36, -33, -30.5, -30, -25, -8, -2, -1, -1e-3, -1e-12,
             0, 1e-12, 1e-3, 0.3, 1, 2, 8, 25, 30, 30.5, 33, 36, 40, 700, 710, 800,
             -1e10, 1e10, -1e200, 1e200)
mu01 <- c(1e-300, 1e-20, 1e-16, eps, 1e-10, 1e-3, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999,
          1 - 1e-10, 1 - eps)
mupos <- c(1e-300, 1e-20, 1e-10, 1e-3, 0.5, 1, 2, 10, 1e5, 1e20, 1e300)
mureal <- c(-1e5, -3, -1, -1e-3, 0, 1e-3, 0.5, 1, 10, 1e5)
cases <- list(
  list(family = "binomial", links = c("logit", "probit", "cloglog", "cauchit", "log"),
       f = binomial, mu = mu01, y = c(0, 1, 0.3, 0.5, 1 / 3), wt = c(1, 3)),
  list(family = "poisson", links = c("log", "identity", "sqrt"),
       f = poisson, mu = mupos, y = c(0, 1, 5, 100, 2.5), wt = c(1, 2)),
  list(family = "Gamma", links = c("inverse", "identity", "log"),
       f = Gamma, mu = mupos, y = c(1e-3, 0.5, 1, 7.5, 1e4), wt = c(1, 2)),
  list(family = "gaussian", links = c("identity", "log", "inverse"),
       f = gaussian, mu = mureal, y = c(-2, 0, 0.5, 3), wt = c(1, 2)))
out <- list()
for (cs in cases) {
  for (ln in cs$links) {
    fam <- cs$f(link = ln)
    eta <- eta_all[sapply(eta_all, function(e) isTRUE(fam$valideta(e)))]
    mu <- cs$mu[sapply(cs$mu, function(m) isTRUE(fam$validmu(m)))]
    mu <- mu[is.finite(suppressWarnings(fam$linkfun(mu)))]  # inside the link's domain
    g <- expand.grid(y = cs$y, mu = mu, wt = cs$wt)
    out[[length(out) + 1]] <- list(
      family = cs$family, link = ln,
      eta = num(eta), linkinv = num(fam$linkinv(eta)), mu_eta = num(fam$mu.eta(eta)),
      mu = num(mu), linkfun = num(fam$linkfun(mu)), variance = num(fam$variance(mu)),
      dev = list(y = num(g$y), mu = num(g$mu), wt = num(g$wt),
                 dev_resids = num(fam$dev.resids(g$y, g$mu, g$wt))))
  }
}
# aic = -2 log-likelihood (R's family$aic; Gamma: at the dispersion dev / sum(wt), plus 2)
set.seed(15)
nb <- 12
tr <- sample(1:9, nb, replace = TRUE); s <- rbinom(nb, tr, 0.4); mub <- runif(nb, 0.05, 0.95)
yb01 <- rbinom(nb, 1, 0.5); yp <- rpois(nb, 3); mup <- runif(nb, 0.5, 6)
yg <- rgamma(nb, 2, 1); mug <- runif(nb, 0.5, 4); wg <- runif(nb, 0.5, 2)
aic_case <- function(name, fam, y, n, mu, wt) {
  dev <- sum(fam$dev.resids(y, mu, wt))
  list(name = name, family = fam$family, y = num(y), n = num(n), mu = num(mu), wt = num(wt),
       dev = num(dev), aic = num(fam$aic(y, n, mu, wt, dev)))
}
aic <- list(
  aic_case("binomial_01", binomial(), yb01, rep(1, nb), mub, rep(1, nb)),
  aic_case("binomial_trials_as_weights", binomial(), s / tr, rep(1, nb), mub, tr),
  aic_case("binomial_cbind", binomial(), s / tr, tr, mub, tr),
  aic_case("poisson", poisson(), yp, rep(1, nb), mup, rep(1, nb)),
  aic_case("poisson_weighted", poisson(), yp, rep(1, nb), mup, wg),
  aic_case("Gamma", Gamma(), yg, rep(1, nb), mug, rep(1, nb)),
  aic_case("Gamma_weighted", Gamma(), yg, rep(1, nb), mug, wg),
  aic_case("gaussian", gaussian(), yg, rep(1, nb), mug, rep(1, nb)),
  aic_case("gaussian_weighted", gaussian(), yg, rep(1, nb), mug, wg))
con <- gzfile("tests/reference/families.json.gz", "w")
writeLines(toJSON(list(grid = out, aic = aic, R = R.version.string), auto_unbox = TRUE), con)
close(con)
