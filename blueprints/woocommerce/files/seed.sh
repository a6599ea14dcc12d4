#!/bin/sh
# Seeds one Storefactory store: installs WordPress, WooCommerce and the Storefront theme,
# enables Cash on Delivery, sets the title and currency and creates the products of
# /seed/products.json. Safe to run again, and run again when a store is changed: every
# step checks before it changes anything, the title and currency are set again, and
# products are updated by SKU.
#
# Values come from the environment and files and are only ever passed as single arguments
# (`--name=value` form), never evaluated, so a value that looks like an option stays data.
set -eu
# Where the ConfigMap and the WordPress volume are mounted; tests point these elsewhere.
seed_dir="${SEED_DIR:-/seed}"
cd "${WORDPRESS_DIR:-/var/www/html}"

log() { printf '[seed] %s\n' "$*"; }

# WordPress' entrypoint writes wp-config.php into the shared volume; MySQL may still be
# initialising. Wait (inside the pod, not in any request) for both, at most ten minutes.
tries=0
until [ -f wp-config.php ] && wp db check --quiet >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -gt 120 ]; then
    log "WordPress files or the database did not become available within 10 minutes"
    exit 1
  fi
  sleep 5
done

if wp core is-installed >/dev/null 2>&1; then
  log "WordPress already installed"
else
  log "installing WordPress"
  printf '%s\n' "$ADMIN_PASSWORD" | wp core install \
    --url="$SITE_URL" --title="$SITE_TITLE" --admin_user="$ADMIN_USER" \
    --admin_email="$ADMIN_EMAIL" --skip-email --prompt=admin_password >/dev/null
fi

if ! wp plugin is-installed woocommerce; then
  log "installing WooCommerce"
  wp plugin install woocommerce
fi
wp plugin is-active woocommerce || wp plugin activate woocommerce

if ! wp theme is-installed storefront; then
  log "installing the Storefront theme"
  wp theme install storefront
fi
wp theme is-active storefront || wp theme activate storefront

log "configuring the shop"
# The title is set on every run, so that a changed store gets its new one. It goes on
# standard input: as an argument, a title such as `--url=...` would be read as an option.
printf '%s' "$SITE_TITLE" | wp option update blogname
wp option update woocommerce_currency "$CURRENCY"
wp option update woocommerce_cod_settings \
  '{"enabled":"yes","title":"Cash on delivery","description":"Pay with cash upon delivery.","instructions":"Pay with cash upon delivery.","enable_for_methods":"","enable_for_virtual":"yes"}' \
  --format=json
wp option update woocommerce_coming_soon no

log "creating products"
wp eval-file "$seed_dir/seed-products.php" "$seed_dir/products.json"
log "done"
